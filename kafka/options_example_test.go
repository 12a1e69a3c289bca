package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/kafka"
)

// A SASL mechanism the keys cannot configure, OAUTHBEARER here, is given in Go. The
// job's keys then set security.protocol=SSL (TLS) and no sasl.* key: franz-go
// authenticates with every mechanism it is given. A program hands the factory to
// cli.Main with cli.WithSystem("kafka", factory), which the Kafka checkpoint manager's
// clients use too.
func ExampleWithClientOpts() {
	token := func(ctx context.Context) (oauth.Auth, error) {
		return oauth.Auth{Token: "a token from your identity provider"}, nil
	}
	factory := kafka.NewFactory(kafka.WithClientOpts(kgo.SASL(oauth.Oauth(token))))

	cfg := config.New(map[string]string{
		"systems.kafka.consumer.bootstrap.servers": "broker-1.example.com:9093",
		"systems.kafka.consumer.security.protocol": "SSL",
	})
	_, err := factory("kafka", cfg, nil) // validates the keys; connects to nothing
	fmt.Println("configuration error:", err)
	// Output:
	// configuration error: <nil>
}

// countClients is a kgo hook counting the clients created per role.
type countClients struct {
	mu    *sync.Mutex
	count map[kafka.Role]int
	role  kafka.Role
}

func (c countClients) OnNewClient(*kgo.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count[c.role]++
}

// Hooks per client, such as a kprom metrics plugin with a namespace per role, come
// from a function called as each client is created.
func ExampleWithClientOptsFunc() {
	c, err := broker("PageViewEvent")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var mu sync.Mutex
	count := map[kafka.Role]int{}
	sys, err := kafka.New("kafka", config.New(map[string]string{
		"systems.kafka.consumer.bootstrap.servers": strings.Join(c.ListenAddrs(), ","),
	}), nil, kafka.WithClientOptsFunc(func(role kafka.Role) []kgo.Opt {
		return []kgo.Opt{kgo.WithHooks(countClients{&mu, count, role})}
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sys.Start(ctx); err != nil { // the admin and producer clients
		fmt.Println(err)
		return
	}
	defer sys.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, role := range slices.Sorted(maps.Keys(count)) {
		fmt.Println(role, count[role])
	}
	// Output:
	// admin 1
	// producer 1
}

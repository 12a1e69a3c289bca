package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// problems returns the *config.Error values in err.
func problems(t *testing.T, err error) []*config.Error {
	t.Helper()
	var out []*config.Error
	var walk func(error)
	walk = func(e error) {
		if ce, ok := e.(*config.Error); ok {
			out = append(out, ce)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		t.Errorf("problem %v (%T) is not a *config.Error", e, e)
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestNewReportsEveryProblemAtOnce(t *testing.T) {
	const seeds = "systems.kafka.consumer.bootstrap.servers"
	tests := []struct {
		name string
		keys map[string]string
		want map[string]string // key -> substring of its message
	}{
		{"no bootstrap servers", map[string]string{"systems.kafka.samza.factory": "kafka"},
			map[string]string{seeds: "missing"}},
		{"bad bootstrap servers", map[string]string{seeds: "localhost,host:99999"},
			map[string]string{seeds: "not host:port: localhost, host:99999"}},
		{"everything wrong", map[string]string{
			seeds:                                                        "127.0.0.1:9092",
			"systems.kafka.consumer.group.id":                            "g",
			"systems.kafka.consumer.acks":                                "all",
			"systems.kafka.producer.auto.offset.reset":                   "earliest",
			"systems.kafka.consumer.auto.offset.reset":                   "sideways",
			"systems.kafka.streams.PageViews.consumer.auto.offset.reset": "whenever",
			"systems.kafka.consumer.fetch.max.bytes":                     "lots",
			"systems.kafka.consumer.fetch.max.wait.ms":                   "-5",
			"systems.kafka.producer.acks":                                "1",
			"systems.kafka.producer.enable.idempotence":                  "false",
			"systems.kafka.producer.linger.ms":                           "soon",
			"systems.kafka.producer.compression.type":                    "brotli",
			"systems.kafka.producer.batch.size":                          "10",
			"systems.kafka.producer.retries":                             "-1",
			"systems.kafka.producer.delivery.timeout.ms":                 "0",
			"systems.kafka.producer.request.timeout.ms":                  "x",
			"systems.kafka.producer.max.request.size":                    "1",
			"systems.kafka.producer.security.protocol":                   "QUIC",
			"systems.kafka.producer.client.id":                           "",
		}, map[string]string{
			"systems.kafka.consumer.group.id":                            "unsupported Kafka client property",
			"systems.kafka.consumer.acks":                                "is a producer property; set it under systems.kafka.producer.acks",
			"systems.kafka.producer.auto.offset.reset":                   "is a consumer property",
			"systems.kafka.consumer.auto.offset.reset":                   "must be oldest, upcoming or fail",
			"systems.kafka.streams.PageViews.consumer.auto.offset.reset": "Kafka's earliest, latest and none",
			"systems.kafka.consumer.fetch.max.bytes":                     "whole number",
			"systems.kafka.consumer.fetch.max.wait.ms":                   "whole number",
			"systems.kafka.producer.acks":                                "only acks=all",
			"systems.kafka.producer.enable.idempotence":                  "always idempotent",
			"systems.kafka.producer.linger.ms":                           "milliseconds",
			"systems.kafka.producer.compression.type":                    "none, gzip, snappy, lz4 or zstd",
			"systems.kafka.producer.batch.size":                          "from 512",
			"systems.kafka.producer.retries":                             "whole number",
			"systems.kafka.producer.delivery.timeout.ms":                 "whole number",
			"systems.kafka.producer.request.timeout.ms":                  "whole number",
			"systems.kafka.producer.max.request.size":                    "from 1024",
			"systems.kafka.producer.security.protocol":                   "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
			"systems.kafka.producer.client.id":                           "empty",
		}},
		{"sasl and ssl without the protocol", map[string]string{
			seeds:                                   "127.0.0.1:9092",
			"systems.kafka.consumer.sasl.mechanism": "PLAIN",
			"systems.kafka.consumer.sasl.jaas.config": `x required username="u" password="secret";`,
			"systems.kafka.consumer.ssl.ca.location":  "/ca.pem",
		}, map[string]string{
			"systems.kafka.consumer.sasl.mechanism":   "has no effect with security.protocol=PLAINTEXT",
			"systems.kafka.consumer.sasl.jaas.config": "has no effect",
			"systems.kafka.consumer.ssl.ca.location":  "has no effect",
		}},
		{"sasl problems", map[string]string{
			seeds: "127.0.0.1:9092",
			"systems.kafka.consumer.security.protocol":   "SASL_PLAINTEXT",
			"systems.kafka.producer.bootstrap.servers":   "127.0.0.1:9092",
			"systems.kafka.producer.security.protocol":   "SASL_SSL",
			"systems.kafka.producer.sasl.mechanism":      "GSSAPI",
			"systems.kafka.producer.ssl.truststore.type": "JKS",
		}, map[string]string{
			"systems.kafka.consumer.sasl.mechanism":      "missing",
			"systems.kafka.producer.sasl.mechanism":      "unsupported SASL mechanism",
			"systems.kafka.producer.ssl.truststore.type": "only PEM",
		}},
		{"jaas problems", map[string]string{
			seeds: "127.0.0.1:9092",
			"systems.kafka.consumer.security.protocol": "SASL_PLAINTEXT",
			"systems.kafka.consumer.sasl.mechanism":    "SCRAM-SHA-256",
			"systems.kafka.consumer.sasl.jaas.config":  `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="secret";`,
			"systems.kafka.producer.security.protocol": "SASL_PLAINTEXT",
			"systems.kafka.producer.sasl.mechanism":    "PLAIN",
		}, map[string]string{
			"systems.kafka.consumer.sasl.jaas.config": "does not match sasl.mechanism=SCRAM-SHA-256",
			"systems.kafka.producer.sasl.jaas.config": "missing SASL credentials",
		}},
		{"tls files", map[string]string{
			seeds: "127.0.0.1:9092",
			"systems.kafka.consumer.security.protocol":                     "SSL",
			"systems.kafka.consumer.ssl.ca.location":                       "/no/such/ca.pem",
			"systems.kafka.consumer.ssl.key.location":                      "/no/such/key.pem",
			"systems.kafka.consumer.ssl.endpoint.identification.algorithm": "dns",
		}, map[string]string{
			"systems.kafka.consumer.ssl.ca.location":                       "cannot read the CA file",
			"systems.kafka.consumer.ssl.key.location":                      "needs a certificate",
			"systems.kafka.consumer.ssl.endpoint.identification.algorithm": "must be https",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New("kafka", config.New(tt.keys), nil)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			got := map[string]*config.Error{}
			for _, p := range problems(t, err) {
				if _, dup := got[p.Key]; dup {
					t.Errorf("key %s reported twice", p.Key)
				}
				got[p.Key] = p
			}
			for key, msg := range tt.want {
				p, ok := got[key]
				if !ok {
					t.Errorf("no problem reported for %s; got %v", key, err)
					continue
				}
				if !strings.Contains(p.Msg, msg) {
					t.Errorf("%s: message %q does not contain %q", key, p.Msg, msg)
				}
				if v := tt.keys[key]; v != "" && !isSecretKey(strings.TrimPrefix(strings.TrimPrefix(key, "systems.kafka.consumer."), "systems.kafka.producer.")) && p.Value != v {
					t.Errorf("%s: value %q, want %q", key, p.Value, v)
				}
				delete(got, key)
			}
			for key, p := range got {
				t.Errorf("unexpected problem for %s: %v", key, p)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}

func TestNewAcceptsSupportedKeys(t *testing.T) {
	cfg := config.New(map[string]string{
		"systems.kafka.samza.factory":                                "kafka",
		"systems.kafka.samza.offset.default":                         "oldest",
		"systems.kafka.streams.PageViews.samza.reset.offset":         "true",
		"systems.kafka.streams.PageViews.consumer.auto.offset.reset": "largest",
		"systems.kafka.default.stream.replication.factor":            "1",
		"systems.kafka.producer.bootstrap.servers":                   "a:1, b:2",
		"systems.kafka.consumer.client.id":                           "c",
		"systems.kafka.consumer.auto.offset.reset":                   "none",
		"systems.kafka.consumer.fetch.max.bytes":                     "1048576",
		"systems.kafka.consumer.max.partition.fetch.bytes":           "65536",
		"systems.kafka.consumer.fetch.min.bytes":                     "1",
		"systems.kafka.consumer.fetch.max.wait.ms":                   "100",
		"systems.kafka.producer.acks":                                "-1",
		"systems.kafka.producer.enable.idempotence":                  "TRUE",
		"systems.kafka.producer.linger.ms":                           "5",
		"systems.kafka.producer.batch.size":                          "16384",
		"systems.kafka.producer.compression.type":                    "zstd",
		"systems.kafka.producer.max.request.size":                    "1048576",
		"systems.kafka.producer.request.timeout.ms":                  "30000",
		"systems.kafka.producer.retries":                             "2147483647",
		"systems.kafka.producer.delivery.timeout.ms":                 "120000",
		"systems.kafka.producer.security.protocol":                   "sasl_plaintext",
		"systems.kafka.producer.sasl.mechanism":                      "scram-sha-512",
		"systems.kafka.producer.sasl.username":                       "u",
		"systems.kafka.producer.sasl.password":                       "p",
		"systems.other.consumer.anything.at.all":                     "belongs to another system",
	})
	s, err := New("kafka", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := s.set
	if !slices.Equal(set.consumer.seeds, []string{"a:1", "b:2"}) || !slices.Equal(set.producer.seeds, set.consumer.seeds) {
		t.Errorf("seeds: consumer %v, producer %v", set.consumer.seeds, set.producer.seeds)
	}
	// The consumer sets no bootstrap servers or security keys, so it connects as
	// the producer does, with its own client id.
	if set.consumer.protocol != "SASL_PLAINTEXT" || set.producer.protocol != "SASL_PLAINTEXT" || set.producer.saslName != "SCRAM-SHA-512" ||
		set.producer.sasl == nil || set.consumer.sasl == nil || set.consumer.clientID != "c" || set.producer.clientID != "" {
		t.Errorf("security: consumer %+v, producer %+v", set.consumer, set.producer)
	}
	if s.ResetPolicy("PageViews") != system.ResetUpcoming || s.ResetPolicy("Other") != system.ResetFail {
		t.Errorf("reset policies: %v", set.resets)
	}
	if set.fetchMaxBytes != 1048576 || set.fetchPartMaxBytes != 65536 || set.fetchMinBytes != 1 || set.fetchMaxWait != 100*time.Millisecond {
		t.Errorf("fetch settings: %+v", set)
	}
	if set.linger != 5*time.Millisecond || set.batchBytes != 16384 || set.maxRequestBytes != 1048576 || len(set.compression) != 1 ||
		set.requestTimeout != 30*time.Second || set.retries != 2147483647 || set.deliveryTimeout != 2*time.Minute {
		t.Errorf("producer settings: %+v", set)
	}
}

func TestParseJAAS(t *testing.T) {
	for _, tt := range []struct {
		in           string
		module, u, p string
		err          string
	}{
		{in: `org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr\"et";`, module: plainModule, u: "alice", p: `s3cr"et`},
		{in: "  " + scramModule + "\trequired   username=bob\n password=\"a b\" ;", module: scramModule, u: "bob", p: "a b"},
		{in: scramModule + ` required username="x" password="y"`, err: `ends with ";"`},
		{in: scramModule + ` always username="x";`, err: "control flag"},
		{in: scramModule + ` required username="x;`, err: "unterminated"},
		{in: scramModule + ` required username="x" username="y";`, err: "twice"},
		{in: scramModule + ` required =x;`, err: "malformed"},
	} {
		module, opts, err := parseJAAS(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseJAAS(%q) = %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || module != tt.module || opts["username"] != tt.u || opts["password"] != tt.p {
			t.Errorf("parseJAAS(%q) = %q %v %v", tt.in, module, opts, err)
		}
	}
}

// TestSASL connects with each supported mechanism to a kfake broker that requires it.
func TestSASL(t *testing.T) {
	_, seeds := cluster(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plainuser", "plainpass"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pass256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pass512"),
		kfake.SeedTopics(1, "t"),
	)
	for _, tt := range []struct {
		name string
		keys map[string]string
		ok   bool
	}{
		{"plain-jaas", map[string]string{"sasl.mechanism": "PLAIN",
			"sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required username="plainuser" password="plainpass";`}, true},
		{"scram256-jaas", map[string]string{"sasl.mechanism": "SCRAM-SHA-256",
			"sasl.jaas.config": `org.apache.kafka.common.security.scram.ScramLoginModule required username="scram256" password="pass256";`}, true},
		{"scram512-username", map[string]string{"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "scram512", "sasl.password": "pass512"}, true},
		{"wrong-password", map[string]string{"sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "scram256", "sasl.password": "nope"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{
				"systems.kafka.consumer.bootstrap.servers": seeds,
				"systems.kafka.consumer.security.protocol": "SASL_PLAINTEXT",
				"systems.kafka.producer.bootstrap.servers": seeds,
				"systems.kafka.producer.security.protocol": "SASL_PLAINTEXT",
			}
			for k, v := range tt.keys {
				m["systems.kafka.consumer."+k] = v
				m["systems.kafka.producer."+k] = v
			}
			s, err := New("kafka", config.New(m), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			d := 5 * time.Second
			if !tt.ok {
				d = 500 * time.Millisecond // kfake hangs up on a bad password, which looks retriable
			}
			ctx, cancel := contextWithTimeout(t, d)
			defer cancel()
			err = s.Start(ctx)
			if !tt.ok {
				if err == nil {
					t.Fatal("Start with a wrong password succeeded")
				}
				contains(t, err.Error(), seeds)
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if _, err := s.Admin().Partitions(ctx, "t"); err != nil {
				t.Fatalf("Partitions: %v", err)
			}
		})
	}
}

// TestTLS serves kfake over TLS with a test CA, and connects with the CA file, with a
// client certificate, and without host name verification.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caCert.Raw)
	// The server certificate names a host other than 127.0.0.1.
	srvDER, srvKey := newLeaf(t, caCert, caKey, "broker.example", nil)
	cliDER, cliKey := newLeaf(t, caCert, caKey, "client", nil)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", cliDER)
	writeKey(t, filepath.Join(dir, "client.key"), cliKey)
	// A PEM keystore holding both.
	both := append(readFile(t, filepath.Join(dir, "client.pem")), readFile(t, filepath.Join(dir, "client.key"))...)
	if err := os.WriteFile(filepath.Join(dir, "keystore.pem"), both, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srvTLS := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
	_, seeds := cluster(t, kfake.TLS(srvTLS), kfake.SeedTopics(1, "t"))

	base := map[string]string{
		"systems.kafka.consumer.bootstrap.servers": seeds,
		"systems.kafka.consumer.security.protocol": "SSL",
		"systems.kafka.consumer.ssl.ca.location":   filepath.Join(dir, "ca.pem"),
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	noVerify := "systems.kafka.consumer.ssl.endpoint.identification.algorithm"
	for _, tt := range []struct {
		name string
		keys map[string]string
		ok   bool
	}{
		{"hostname-mismatch", base, false},
		{"no-hostname-check", with(noVerify, ""), true},
		{"client-cert", with(noVerify, "", "systems.kafka.consumer.ssl.certificate.location", filepath.Join(dir, "client.pem"),
			"systems.kafka.consumer.ssl.key.location", filepath.Join(dir, "client.key")), true},
		{"pem-keystore", with(noVerify, "", "systems.kafka.consumer.ssl.keystore.location", filepath.Join(dir, "keystore.pem"),
			"systems.kafka.consumer.ssl.keystore.type", "PEM", "systems.kafka.consumer.ssl.truststore.type", "PEM"), true},
		{"wrong-ca", with(noVerify, "", "systems.kafka.consumer.ssl.ca.location", filepath.Join(dir, "client.pem")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New("kafka", config.New(tt.keys), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := contextWithTimeout(t, 2*time.Second)
			defer cancel()
			err = s.Start(ctx)
			if tt.ok != (err == nil) {
				t.Fatalf("Start = %v, want ok=%v", err, tt.ok)
			}
		})
	}

	// Bad files are config errors naming the key and the file.
	_, err := New("kafka", config.New(with("systems.kafka.consumer.ssl.certificate.location", filepath.Join(dir, "ca.pem"))), nil)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "systems.kafka.consumer.ssl.certificate.location" || !strings.Contains(ce.Msg, "cannot load") {
		t.Errorf("certificate without key = %v", err)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "PRIVATE KEY", der)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

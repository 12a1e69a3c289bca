package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-streams/sluice/config"
	"github.com/sluice-streams/sluice/system"
)

// Defaults that differ from franz-go's or Kafka's own.
const (
	// DefaultDeliveryTimeout bounds how long a produced message may take to be
	// acknowledged (delivery.timeout.ms) before Flush reports it failed. The Java
	// client's default is 120 s; a commit that cannot flush should fail sooner.
	DefaultDeliveryTimeout = 30 * time.Second
	// StartTimeout bounds how long Start waits for the cluster to answer.
	StartTimeout = 15 * time.Second
)

const hidden = "(hidden)"

// maxBatchBytes is the largest batch.size, max.request.size and fetch.max.bytes
// accepted: franz-go's default limit on one request or response (Kafka's
// socket.request.max.bytes default).
const maxBatchBytes = 100 << 20

// conn is how one client role (consumer or producer) reaches the cluster.
type conn struct {
	seeds        []string
	clientID     string
	tls          *tls.Config
	sasl         sasl.Mechanism
	saslName     string
	protocol     string
	seedsFrom    string // the key the seeds came from, for error messages
	secInherited bool   // security settings copied from the other role
}

func (c conn) opts(l *kgoLogger) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.seeds...), kgo.WithLogger(l)}
	if c.clientID != "" {
		opts = append(opts, kgo.ClientID(c.clientID))
	}
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls.Clone()))
	}
	if c.sasl != nil {
		opts = append(opts, kgo.SASL(c.sasl))
	}
	return opts
}

// settings is a system's validated configuration.
type settings struct {
	consumer conn
	producer conn

	// consumer
	fetchMaxBytes     int32
	fetchPartMaxBytes int32
	fetchMinBytes     int32
	fetchMaxWait      time.Duration
	readCommitted     bool                 // isolation.level=read_committed
	resets            system.ResetPolicies // consumer.auto.offset.reset, per stream too

	// producer
	linger             time.Duration
	hasLinger          bool
	batchBytes         int32
	maxRequestBytes    int32
	compression        []kgo.CompressionCodec
	requestTimeout     time.Duration
	retries            int
	hasRetries         bool
	deliveryTimeout    time.Duration
	transactionTimeout time.Duration // of exactly-once tasks' producers

	// delete says of which inputs committed messages are deleted (deleter.go).
	delete deleteSettings

	// extra are the program's extra client options (WithClientOptsFunc).
	extra []func(Role) []kgo.Opt
}

// Keys understood under both consumer.* and producer.*.
var commonKeys = []string{
	"bootstrap.servers", "client.id", "security.protocol",
	"sasl.mechanism", "sasl.jaas.config", "sasl.username", "sasl.password",
	"ssl.truststore.location", "ssl.truststore.type", "ssl.ca.location",
	"ssl.keystore.location", "ssl.keystore.type", "ssl.certificate.location", "ssl.key.location",
	"ssl.endpoint.identification.algorithm",
}

var consumerKeys = []string{
	"auto.offset.reset", "fetch.max.bytes", "max.partition.fetch.bytes", "fetch.min.bytes", "fetch.max.wait.ms",
	"isolation.level",
}

var producerKeys = []string{
	"acks", "enable.idempotence", "linger.ms", "batch.size", "compression.type",
	"max.request.size", "request.timeout.ms", "retries", "delivery.timeout.ms",
	"transaction.timeout.ms",
}

// SupportedConsumerProperties returns the Kafka client properties accepted under
// systems.<s>.consumer., sorted.
func SupportedConsumerProperties() []string {
	return sortedUnion(commonKeys, consumerKeys)
}

// SupportedProducerProperties returns the Kafka client properties accepted under
// systems.<s>.producer., sorted.
func SupportedProducerProperties() []string {
	return sortedUnion(commonKeys, producerKeys)
}

func sortedUnion(a, b []string) []string {
	s := slices.Concat(a, b)
	slices.Sort(s)
	return s
}

// parseSettings validates every key of system name, collecting all problems.
func parseSettings(name string, cfg config.Config) (*settings, error) {
	var p config.Problems
	prefix := "systems." + name + "."
	s := &settings{}

	// Reject keys in the wrong role or unknown, before interpreting the rest.
	checkRole(&p, cfg, prefix+"consumer.", consumerKeys, producerKeys, "producer")
	checkRole(&p, cfg, prefix+"producer.", producerKeys, consumerKeys, "consumer")

	cons := parseConn(&p, cfg, prefix+"consumer.")
	prod := parseConn(&p, cfg, prefix+"producer.")
	// A role without bootstrap servers uses the other's; a role that sets none of the
	// security keys secures its connections as the other does.
	switch {
	case len(cons.seeds) == 0 && len(prod.seeds) == 0:
		if cons.seedsFrom == "" && prod.seedsFrom == "" {
			p.Add(prefix+"consumer.bootstrap.servers", "", "missing: set %sconsumer.bootstrap.servers or %sproducer.bootstrap.servers to the Kafka brokers (host:port,...)", prefix, prefix)
		}
	case cons.seedsFrom == "":
		cons.seeds, cons.seedsFrom = prod.seeds, prod.seedsFrom
	case prod.seedsFrom == "":
		prod.seeds, prod.seedsFrom = cons.seeds, cons.seedsFrom
	}
	consSec, prodSec := hasSecurityKeys(cfg, prefix+"consumer."), hasSecurityKeys(cfg, prefix+"producer.")
	switch {
	case consSec && !prodSec:
		prod = inheritSecurity(cons, prod)
	case prodSec && !consSec:
		cons = inheritSecurity(prod, cons)
	}
	s.consumer, s.producer = cons, prod

	parseConsumer(&p, cfg, prefix+"consumer.", s)
	s.resets = system.ReadResetPolicies(&p, cfg, name)
	parseProducer(&p, cfg, prefix+"producer.", s)
	parseDelete(&p, cfg, name, s)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// hasSecurityKeys reports whether a role sets security.protocol or any sasl.* or
// ssl.* key; a role that sets none inherits the other role's security.
func hasSecurityKeys(cfg config.Config, prefix string) bool {
	for _, k := range commonKeys {
		if k == "security.protocol" || strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl.") {
			if _, ok := cfg.Get(prefix + k); ok {
				return true
			}
		}
	}
	return false
}

// inheritSecurity returns own with from's security settings.
func inheritSecurity(from, own conn) conn {
	own.protocol, own.tls, own.sasl, own.saslName = from.protocol, from.tls, from.sasl, from.saslName
	own.secInherited = true
	return own
}

func checkRole(p *config.Problems, cfg config.Config, prefix string, own, other []string, otherRole string) {
	sub := cfg.Subset(prefix)
	for _, k := range sub.Keys() {
		if slices.Contains(commonKeys, k) || slices.Contains(own, k) {
			continue
		}
		v, _ := sub.Get(k)
		if isSecretKey(k) {
			v = hidden
		}
		if slices.Contains(other, k) {
			p.Add(prefix+k, v, "%s is a %s property; set it under %s instead", k, otherRole, strings.TrimSuffix(strings.TrimSuffix(prefix, "consumer."), "producer.")+otherRole+"."+k)
			continue
		}
		p.Add(prefix+k, v, "unsupported Kafka client property; supported here: %s", strings.Join(sortedUnion(commonKeys, own), ", "))
	}
}

func isSecretKey(k string) bool {
	return k == "sasl.jaas.config" || k == "sasl.password" || strings.Contains(k, "password")
}

func parseConn(p *config.Problems, cfg config.Config, prefix string) conn {
	var c conn
	get := func(k string) (string, bool) { return cfg.Get(prefix + k) }

	if v, ok := get("bootstrap.servers"); ok {
		c.seedsFrom = prefix + "bootstrap.servers"
		seeds, err := parseSeeds(v)
		if err != nil {
			p.Add(prefix+"bootstrap.servers", v, "%v", err)
		}
		c.seeds = seeds
	}
	if v, ok := get("client.id"); ok {
		if v == "" {
			p.Add(prefix+"client.id", v, "must not be empty")
		}
		c.clientID = v
	}

	c.protocol = "PLAINTEXT"
	if v, ok := get("security.protocol"); ok {
		switch u := strings.ToUpper(v); u {
		case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
			c.protocol = u
		default:
			p.Add(prefix+"security.protocol", v, "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
		}
	}
	useTLS := c.protocol == "SSL" || c.protocol == "SASL_SSL"
	useSASL := c.protocol == "SASL_PLAINTEXT" || c.protocol == "SASL_SSL"

	// TLS.
	var tlsKeys []string
	for _, k := range commonKeys {
		if strings.HasPrefix(k, "ssl.") {
			if _, ok := get(k); ok {
				tlsKeys = append(tlsKeys, k)
			}
		}
	}
	if !useTLS {
		for _, k := range tlsKeys {
			v, _ := get(k)
			p.Add(prefix+k, v, "has no effect with security.protocol=%s; set %ssecurity.protocol=SSL or SASL_SSL, or remove it", c.protocol, prefix)
		}
	} else {
		c.tls = parseTLS(p, cfg, prefix)
	}

	// SASL.
	var saslKeys []string
	for _, k := range []string{"sasl.mechanism", "sasl.jaas.config", "sasl.username", "sasl.password"} {
		if _, ok := get(k); ok {
			saslKeys = append(saslKeys, k)
		}
	}
	if !useSASL {
		for _, k := range saslKeys {
			v, _ := get(k)
			if isSecretKey(k) {
				v = hidden
			}
			p.Add(prefix+k, v, "has no effect with security.protocol=%s; set %ssecurity.protocol=SASL_PLAINTEXT or SASL_SSL, or remove it", c.protocol, prefix)
		}
	} else {
		c.sasl, c.saslName = parseSASL(p, cfg, prefix)
	}
	return c
}

func parseSeeds(v string) ([]string, error) {
	var seeds, bad []string
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			bad = append(bad, s)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad = append(bad, s)
			continue
		}
		seeds = append(seeds, s)
	}
	switch {
	case len(bad) > 0:
		return nil, fmt.Errorf("not host:port: %s", strings.Join(bad, ", "))
	case len(seeds) == 0:
		return nil, errors.New("no brokers given (want host:port,...)")
	}
	return seeds, nil
}

func parseTLS(p *config.Problems, cfg config.Config, prefix string) *tls.Config {
	get := func(k string) (string, bool) { return cfg.Get(prefix + k) }
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	ok := true

	for _, k := range []string{"ssl.truststore.type", "ssl.keystore.type"} {
		if v, set := get(k); set && !strings.EqualFold(v, "PEM") {
			p.Add(prefix+k, v, "only PEM files are supported; convert the store to PEM and set %s=PEM (or remove the key)", k)
			ok = false
		}
	}

	ca, caKey := "", ""
	for _, k := range []string{"ssl.truststore.location", "ssl.ca.location"} {
		if v, set := get(k); set {
			if caKey != "" {
				p.Add(prefix+k, v, "conflicts with %s%s; give one CA file", prefix, caKey)
				ok = false
				continue
			}
			ca, caKey = v, k
		}
	}
	if caKey != "" {
		pem, err := os.ReadFile(ca)
		switch {
		case err != nil:
			p.Add(prefix+caKey, ca, "cannot read the CA file: %v", err)
			ok = false
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				p.Add(prefix+caKey, ca, "no PEM certificate found in the CA file")
				ok = false
			}
			tc.RootCAs = pool
		}
	}

	certFile, certKey := "", ""
	for _, k := range []string{"ssl.keystore.location", "ssl.certificate.location"} {
		if v, set := get(k); set {
			if certKey != "" {
				p.Add(prefix+k, v, "conflicts with %s%s; give one certificate file", prefix, certKey)
				ok = false
				continue
			}
			certFile, certKey = v, k
		}
	}
	keyFile, keySet := get("ssl.key.location")
	switch {
	case certKey == "" && keySet:
		p.Add(prefix+"ssl.key.location", keyFile, "a private key needs a certificate: set %sssl.certificate.location (or ssl.keystore.location) too", prefix)
		ok = false
	case certKey != "":
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			p.Add(prefix+certKey, certFile, "cannot read the certificate file: %v", err)
			ok = false
			break
		}
		keyPEM, from, fromKey := certPEM, certFile, certKey // a PEM keystore may hold both
		if keySet {
			from, fromKey = keyFile, "ssl.key.location"
			if keyPEM, err = os.ReadFile(keyFile); err != nil {
				p.Add(prefix+"ssl.key.location", keyFile, "cannot read the private key file: %v", err)
				ok = false
				break
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			p.Add(prefix+fromKey, from, "cannot load the client certificate and key (PEM, unencrypted key): %v", err)
			ok = false
			break
		}
		tc.Certificates = []tls.Certificate{cert}
	}

	if v, set := get("ssl.endpoint.identification.algorithm"); set {
		switch strings.ToLower(v) {
		case "https":
		case "":
			// Verify the chain but not the host name, as the Java client does when
			// the algorithm is empty.
			roots := tc.RootCAs
			tc.InsecureSkipVerify = true
			tc.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("kafka: the broker sent no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
				return err
			}
		default:
			p.Add(prefix+"ssl.endpoint.identification.algorithm", v, "must be https (verify the broker host name, the default) or empty (do not)")
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return tc
}

// otherMechanisms says how to use a SASL mechanism the keys cannot configure.
const otherMechanisms = "for OAUTHBEARER, AWS_MSK_IAM and others, a Go program gives the mechanism with kafka.WithClientOpts(kgo.SASL(...)) and sets security.protocol=SSL or PLAINTEXT and no sasl.* key; see docs/kafka.md"

const (
	plainModule = "org.apache.kafka.common.security.plain.PlainLoginModule"
	scramModule = "org.apache.kafka.common.security.scram.ScramLoginModule"
)

func parseSASL(p *config.Problems, cfg config.Config, prefix string) (sasl.Mechanism, string) {
	get := func(k string) (string, bool) { return cfg.Get(prefix + k) }
	raw, set := get("sasl.mechanism")
	mech := strings.ToUpper(raw)
	switch {
	case !set || mech == "":
		p.Add(prefix+"sasl.mechanism", "", "missing: security.protocol uses SASL, so set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (GSSAPI, Kafka's default, is not supported; "+otherMechanisms+")")
		return nil, ""
	case mech != "PLAIN" && mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-512":
		p.Add(prefix+"sasl.mechanism", raw, "unsupported SASL mechanism; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 ("+otherMechanisms+")")
		return nil, ""
	}

	var user, pass string
	jaas, hasJAAS := get("sasl.jaas.config")
	u, hasUser := get("sasl.username")
	pw, hasPass := get("sasl.password")
	switch {
	case hasJAAS && (hasUser || hasPass):
		p.Add(prefix+"sasl.jaas.config", hidden, "conflicts with %ssasl.username/sasl.password; give the credentials one way", prefix)
		return nil, ""
	case hasJAAS:
		module, opts, err := parseJAAS(jaas)
		if err != nil {
			p.Add(prefix+"sasl.jaas.config", hidden, "%v", err)
			return nil, ""
		}
		want := plainModule
		if mech != "PLAIN" {
			want = scramModule
		}
		if module != want {
			p.Add(prefix+"sasl.jaas.config", hidden, "login module %s does not match sasl.mechanism=%s (want %s)", module, mech, want)
			return nil, ""
		}
		for k := range opts {
			if k != "username" && k != "password" {
				p.Add(prefix+"sasl.jaas.config", hidden, "unsupported JAAS option %q (only username and password are supported)", k)
				return nil, ""
			}
		}
		user, pass = opts["username"], opts["password"]
		if user == "" || pass == "" {
			p.Add(prefix+"sasl.jaas.config", hidden, `needs username="..." and password="..."`)
			return nil, ""
		}
	case hasUser && hasPass:
		user, pass = u, pw
		if user == "" {
			p.Add(prefix+"sasl.username", user, "must not be empty")
			return nil, ""
		}
	default:
		p.Add(prefix+"sasl.jaas.config", "", "missing SASL credentials: set %ssasl.jaas.config (username=\"...\" password=\"...\") or both sasl.username and sasl.password", prefix)
		return nil, ""
	}

	switch mech {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), mech
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), mech
	default:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), mech
	}
}

// parseJAAS parses one Java JAAS login line:
//
//	org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";
//
// It returns the login module class and its options. Values may be quoted (with
// backslash escapes) or bare.
func parseJAAS(s string) (module string, opts map[string]string, err error) {
	s = strings.TrimSpace(s)
	body, ok := strings.CutSuffix(s, ";")
	if !ok {
		return "", nil, errors.New(`a JAAS line ends with ";"`)
	}
	fields := strings.Fields(body)
	if len(fields) < 2 {
		return "", nil, errors.New("want: <LoginModule class> required username=\"...\" password=\"...\";")
	}
	module = fields[0]
	rest := strings.TrimSpace(body[len(module):])
	flag := rest
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		flag, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	switch flag {
	case "required", "requisite", "sufficient", "optional":
	default:
		return "", nil, fmt.Errorf("want a control flag (required) after %s, not %q", module, flag)
	}
	opts = map[string]string{}
	rest = strings.TrimSpace(rest)
	for rest != "" {
		k, v, ok := strings.Cut(rest, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"") {
			return "", nil, fmt.Errorf("malformed option %d (want key=\"value\")", len(opts)+1)
		}
		v = strings.TrimLeft(v, " \t")
		var val string
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for ; i < len(v); i++ {
				c := v[i]
				if c == '\\' && i+1 < len(v) {
					i++
					b.WriteByte(v[i])
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return "", nil, fmt.Errorf("unterminated quoted value for option %q", k)
			}
			val, rest = b.String(), v[i:]
		} else {
			end := strings.IndexFunc(v, unicode.IsSpace)
			if end < 0 {
				end = len(v)
			}
			val, rest = v[:end], v[end:]
		}
		if _, dup := opts[k]; dup {
			return "", nil, fmt.Errorf("option %q given twice", k)
		}
		opts[k] = val
		rest = strings.TrimSpace(rest)
	}
	return module, opts, nil
}

func parseConsumer(p *config.Problems, cfg config.Config, prefix string, s *settings) {
	s.fetchMaxBytes = int32Key(p, cfg, prefix+"fetch.max.bytes", 1, maxBatchBytes)
	s.fetchPartMaxBytes = int32Key(p, cfg, prefix+"max.partition.fetch.bytes", 1, maxBatchBytes)
	s.fetchMinBytes = int32Key(p, cfg, prefix+"fetch.min.bytes", 1, 1<<30)
	if ms := int32Key(p, cfg, prefix+"fetch.max.wait.ms", 10, 1<<30); ms > 0 {
		s.fetchMaxWait = time.Duration(ms) * time.Millisecond
	}
	// Under exactly-once, inputs are read as committed: the outputs of other
	// exactly-once jobs are visible only once their transaction committed.
	s.readCommitted = exactlyOnce(cfg)
	if v, ok := cfg.Get(prefix + "isolation.level"); ok {
		switch strings.ToLower(v) {
		case "read_committed":
			s.readCommitted = true
		case "read_uncommitted":
			s.readCommitted = false
		default:
			p.Add(prefix+"isolation.level", v, "must be read_committed or read_uncommitted")
		}
	}
	if s.fetchMaxBytes > 0 && s.fetchPartMaxBytes > s.fetchMaxBytes {
		v, _ := cfg.Get(prefix + "max.partition.fetch.bytes")
		p.Add(prefix+"max.partition.fetch.bytes", v, "must not exceed fetch.max.bytes (%d)", s.fetchMaxBytes)
	}
}

func parseProducer(p *config.Problems, cfg config.Config, prefix string, s *settings) {
	if v, ok := cfg.Get(prefix + "acks"); ok {
		if v != "all" && v != "-1" {
			p.Add(prefix+"acks", v, "only acks=all (or -1) is supported: a checkpoint may only cover output that every in-sync replica has, or a broker failure after the checkpoint loses it")
		}
	}
	if v, ok := cfg.Get(prefix + "enable.idempotence"); ok {
		if !strings.EqualFold(v, "true") {
			p.Add(prefix+"enable.idempotence", v, "only true is supported: the producer is always idempotent, so retries neither duplicate nor reorder messages")
		}
	}
	if v, ok := cfg.Get(prefix + "linger.ms"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 60_000 {
			p.Add(prefix+"linger.ms", v, "must be a whole number of milliseconds from 0 to 60000")
		} else {
			s.linger, s.hasLinger = time.Duration(n)*time.Millisecond, true
		}
	}
	s.batchBytes = int32Key(p, cfg, prefix+"batch.size", 512, maxBatchBytes)
	s.maxRequestBytes = int32Key(p, cfg, prefix+"max.request.size", 1024, maxBatchBytes)
	if s.batchBytes > 0 && s.maxRequestBytes > 0 && s.batchBytes > s.maxRequestBytes {
		v, _ := cfg.Get(prefix + "batch.size")
		p.Add(prefix+"batch.size", v, "must not exceed max.request.size (%d)", s.maxRequestBytes)
	}
	if v, ok := cfg.Get(prefix + "compression.type"); ok {
		switch strings.ToLower(v) {
		case "none":
			s.compression = []kgo.CompressionCodec{kgo.NoCompression()}
		case "gzip":
			s.compression = []kgo.CompressionCodec{kgo.GzipCompression()}
		case "snappy":
			s.compression = []kgo.CompressionCodec{kgo.SnappyCompression()}
		case "lz4":
			s.compression = []kgo.CompressionCodec{kgo.Lz4Compression()}
		case "zstd":
			s.compression = []kgo.CompressionCodec{kgo.ZstdCompression()}
		default:
			p.Add(prefix+"compression.type", v, "must be none, gzip, snappy, lz4 or zstd")
		}
	}
	if ms := int32Key(p, cfg, prefix+"request.timeout.ms", 100, 1<<30); ms > 0 {
		s.requestTimeout = time.Duration(ms) * time.Millisecond
	}
	if v, ok := cfg.Get(prefix + "retries"); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			p.Add(prefix+"retries", v, "must be a whole number from 0 to 2147483647")
		} else {
			s.retries, s.hasRetries = int(n), true
		}
	}
	s.deliveryTimeout = DefaultDeliveryTimeout
	if ms := int32Key(p, cfg, prefix+"delivery.timeout.ms", 100, 1<<30); ms > 0 {
		s.deliveryTimeout = time.Duration(ms) * time.Millisecond
	}
	s.transactionTimeout = DefaultTransactionTimeout
	if ms := int32Key(p, cfg, prefix+"transaction.timeout.ms", 1000, 15*60*1000); ms > 0 {
		s.transactionTimeout = time.Duration(ms) * time.Millisecond
	}
}

// int32Key returns key as a number within [lo, hi], 0 when unset, adding a problem
// (and returning 0) when it is not.
func int32Key(p *config.Problems, cfg config.Config, key string, lo, hi int64) int32 {
	v, ok := cfg.Get(key)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.Add(key, v, "must be a whole number from %d to %d", lo, hi)
		return 0
	}
	return int32(n)
}

// consumerOpts are the kgo options shared by every consumer client of the system.
func (s *settings) consumerOpts(l *kgoLogger) []kgo.Opt {
	opts := s.connOpts(RoleConsumer, l)
	if s.fetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(s.fetchMaxBytes))
	}
	if s.fetchPartMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(s.fetchPartMaxBytes))
	}
	if s.fetchMinBytes > 0 {
		opts = append(opts, kgo.FetchMinBytes(s.fetchMinBytes))
	}
	if s.fetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(s.fetchMaxWait))
	}
	if s.readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	// Transaction markers come through (as control envelopes, which the container
	// does not hand to tasks), so that a reader's position moves past a marker at the
	// end of a partition: caught up and lag are then right for transactional inputs.
	opts = append(opts, kgo.KeepControlRecords())
	return opts
}

// exactlyOnce reports whether the job's task.processing.guarantee is exactly-once
// (which also makes consumers read committed records only, unless isolation.level
// says otherwise).
func exactlyOnce(cfg config.Config) bool {
	switch strings.ToLower(strings.ReplaceAll(cfg.GetOr("task.processing.guarantee", ""), "_", "-")) {
	case "exactly-once", "exactly-once-v2":
		return true
	}
	return false
}

// maxProducerBatchBytes is the largest batch the producer sends: batch.size when set,
// else max.request.size, else franz-go's default (Kafka's max.message.bytes default).
func (s *settings) maxProducerBatchBytes() int32 {
	switch {
	case s.batchBytes > 0:
		return s.batchBytes
	case s.maxRequestBytes > 0:
		return s.maxRequestBytes
	}
	return defaultMaxBatchBytes
}

// defaultMaxBatchBytes is franz-go's default ProducerBatchMaxBytes.
const defaultMaxBatchBytes = 1000012

// producerOpts are the kgo options of the system's shared producer client.
func (s *settings) producerOpts(l *kgoLogger) []kgo.Opt {
	opts := append(s.connOpts(RoleProducer, l),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(envelopePartitioner{}),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from each record's
		// timestamp, and records keep the timestamps of the messages they copy,
		// which may be days old. Producer.Send bounds delivery with the record's
		// context instead (see deliveryDeadlines).
	)
	if s.hasLinger {
		opts = append(opts, kgo.ProducerLinger(s.linger))
	}
	switch {
	case s.batchBytes > 0:
		opts = append(opts, kgo.ProducerBatchMaxBytes(s.batchBytes))
	case s.maxRequestBytes > 0:
		opts = append(opts, kgo.ProducerBatchMaxBytes(s.maxRequestBytes))
	}
	if len(s.compression) > 0 {
		opts = append(opts, kgo.ProducerBatchCompression(s.compression...))
	}
	if s.requestTimeout > 0 {
		opts = append(opts, kgo.ProduceRequestTimeout(s.requestTimeout))
	}
	if s.hasRetries {
		opts = append(opts, kgo.RecordRetries(s.retries))
	}
	return opts
}

// Package kafka is Sluice's Kafka system and Kafka checkpoint manager, built on
// franz-go (kgo and kadm).
//
// # The system
//
// New (or Factory, its system.Factory form) reads the keys under systems.<name>. and
// validates all of them before anything connects; Start connects. A System has an
// Admin (log start offset = oldest, high watermark = upcoming, high watermark − 1 =
// newest), consumers that read exactly the partitions and offsets registered with them
// (one franz-go client each, no consumer group), and per-task producers sharing one
// idempotent acks=all client, each of whose Flush waits for its own messages only.
//
// Kafka client properties are accepted under systems.<s>.consumer. and
// systems.<s>.producer. and mapped onto franz-go options; any other property there is
// a configuration error, never silently ignored:
//
//	both roles
//	  bootstrap.servers          host:port,...  (one role's is used for both if only one is set)
//	  client.id
//	  security.protocol          PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
//	  sasl.mechanism             PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (others, such as OAUTHBEARER: WithClientOpts)
//	  sasl.jaas.config           Java JAAS line: <PlainLoginModule|ScramLoginModule> required username="..." password="...";
//	  sasl.username, sasl.password   the same credentials, without JAAS
//	  ssl.truststore.location, ssl.ca.location   PEM file of trusted CA certificates
//	  ssl.truststore.type, ssl.keystore.type     PEM only
//	  ssl.keystore.location, ssl.certificate.location   PEM client certificate (chain); may hold the key too
//	  ssl.key.location           PEM private key (unencrypted) for the client certificate
//	  ssl.endpoint.identification.algorithm   https (default: check the broker's host name) or empty (do not)
//	consumer
//	  auto.offset.reset          oldest|earliest|smallest (default), upcoming|latest|largest, fail|none
//	  fetch.max.bytes, max.partition.fetch.bytes, fetch.min.bytes
//	  fetch.max.wait.ms          default 500, Kafka's (franz-go's is 5000)
//	producer
//	  acks                       all or -1 only
//	  enable.idempotence         true only
//	  linger.ms                  franz-go's default is 10
//	  batch.size                 franz-go's batch limit; unlike Java a record larger than it fails
//	  max.request.size           the batch (and so record) limit when batch.size is unset
//	  compression.type           none, gzip, snappy, lz4, zstd
//	  request.timeout.ms         produce request timeout
//	  retries                    record retries (default: unlimited, bounded by delivery.timeout.ms)
//	  delivery.timeout.ms        default 30000 (Java: 120000)
//
// Security settings given for a protocol that does not use them (ssl.* with PLAINTEXT,
// sasl.* without SASL) are errors. A role without bootstrap.servers uses the other
// role's, and a role that sets no security key (security.protocol, sasl.*, ssl.*)
// secures its connections as the other role does. Keys
// elsewhere under systems.<s>. (samza.factory, samza.offset.default, streams.*,
// default.stream.*) belong to the container and are not checked here, except
// systems.<s>.streams.<stream>.consumer.auto.offset.reset, the per-stream reset policy.
//
// Only acks=all is accepted because a checkpoint may only cover output that every
// in-sync replica holds; with fewer acks a broker failure after the checkpoint would
// lose output that will never be produced again.
//
// # Options beyond the keys
//
// What the keys cannot express, a Go program gives as franz-go options: New and
// NewFactory take WithClientOpts (the same options for every client) and
// WithClientOptsFunc (options per client, by Role), for a SASL mechanism such as
// OAUTHBEARER (franz-go's pkg/sasl/oauth) or AWS_MSK_IAM (pkg/sasl/aws), a dialer,
// or hooks such as kprom's. They reach every client the system creates (admin,
// consumers, producer) and those of the checkpoint manager built on it. They come
// after the options of the connection keys and before those Sluice needs of each
// client (acks=all, its partitioner, the partitions and offsets it consumes), so they
// can change how a client connects but not what it guarantees.
//
// # Offsets out of range
//
// Consumers never move silently. When the next offset of a partition no longer
// exists while the job runs (retention deleted it before it was read), the stream's
// reset policy (System.ResetPolicy, a system.ResetPolicy) decides: oldest or upcoming resume there, logging a
// warning with the partition, the old and new offsets and the number of messages
// skipped, and counting it in Stats; fail makes Poll return an error naming the
// partition and offset. The container checks checkpointed offsets against the
// retained range at start itself, through the Admin.
//
// # The checkpoint manager
//
// NewCheckpointManager stores checkpoints in a compacted, one-partition topic,
// __samza_checkpoint_<job.name>_<job.id> unless task.checkpoint.topic says otherwise,
// one record per task per commit keyed by the task name. docs/checkpoint-format.md
// describes the bytes, the topic's configuration and how it is read. Running
// containers hold a run lock (AcquireRunLock: static membership of the job's run-lock
// group, so that two processes never run one container); the checkpoint tool holds
// the rewrite lock (LockForRewrite) while it writes, and each refuses while the other
// is held.
//
// Tests can start a broker with package kafka/kafkatest.
package kafka

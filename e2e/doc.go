// Package e2e holds Sluice's end-to-end tests: they build the sluice binary and drive it
// as a user would, against a Kafka-protocol broker over real TCP, killing processes with
// SIGKILL and counting every message. It has no non-test code.
package e2e

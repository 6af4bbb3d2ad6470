// Command go-tools is an agentmesh processor written in Go with nothing but
// the official NATS client, following docs/EVENTS.md ("A processor in another
// language"): it owns two tools, get_time and calculate, reads
// agent/tool-call-requested from a durable JetStream consumer and writes
// agent/tool-call-settled. On a fork's stream/forked (or, if the fork was
// paused then, on the first stream/resumed after it) it answers the calls for
// its tools that the fork inherited open (docs/EVENTS.md, "Forks").
//
// The files: main.go (start and the fetch loop), consumer.go (the durable
// consumer and the pause index), handle.go (one message: ack, nak or give up),
// react.go (the decide-and-append loop), fork.go (taking up a fork's open
// calls), log.go (reading a subject by direct get), tools.go (the tools).
package main

import (
	"encoding/json"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

const processorName = "go-tools"

// storedBody is the JSON body of a stored event (docs/EVENTS.md, "A stored event on the wire").
type storedBody struct {
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Metadata       map[string]any  `json:"metadata,omitempty"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	Source         *source         `json:"source,omitempty"`
	CreatedAt      string          `json:"createdAt,omitempty"`
	// Set on the events a fork inherited: history, never reacted to again (docs/EVENTS.md, "Forks").
	ForkedFrom json.RawMessage `json:"forkedFrom,omitempty"`
}

type source struct {
	Processor       string `json:"processor"`
	CausationOffset uint64 `json:"causationOffset"`
}

// processor is one replica: its connection, its durable consumer and what the consumer's settings say.
type processor struct {
	name   string
	stream string
	filter string // the filter of a consumer this replica creates; a bound one keeps its own
	js     nats.JetStreamContext
	status nats.KeyValue // the pause index (KV agentmesh-stream-status)
	sub    *nats.Subscription
	// From the consumer's info each time it is bound: the last delivery (after it, give up) and the ack wait.
	maxDeliver int
	ackWait    time.Duration
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	natsURL := env("NATS_URL", nats.DefaultURL)
	p := &processor{
		name:   env("PROCESSOR_NAME", processorName),
		stream: env("EVENTS_STREAM", "EVENTS"),
		filter: env("PROCESSOR_SUBJECT_FILTER", "events.>"),
	}

	nc, err := nats.Connect(natsURL, nats.Name("agentmesh-"+p.name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		log.Fatalf("%s: connect: %v", p.name, err)
	}
	// The consumer is never one the library created (consumer.go), so draining does not delete it.
	defer nc.Drain()
	if p.js, err = nc.JetStream(); err != nil {
		log.Fatalf("%s: jetstream: %v", p.name, err)
	}
	// The gateway creates the events stream and the KV buckets; until it has, wait (docs/EVENTS.md, "Who creates what").
	p.bind()
	p.status = waitForBucket(p.js, p.name, "agentmesh-stream-status")
	log.Printf("%s processor running (consumer %s, max_deliver %d)", p.name, p.durable(), p.maxDeliver)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	p.run(stop)
	log.Printf("%s processor stopped", p.name)
}

// run pulls from the durable consumer until stop, handling the messages one at a time, in the order delivered.
func (p *processor) run(stop <-chan os.Signal) {
	failures := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		msgs, err := p.sub.Fetch(32, nats.MaxWait(time.Second))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			failures++
			p.recoverFetch(err, failures)
			continue
		}
		failures = 0
		for _, msg := range msgs {
			p.handle(msg)
		}
	}
}

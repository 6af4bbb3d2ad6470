package main

import (
	"encoding/json"
	"errors"
	"log"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// The consumer this replica creates when there is none (docs/EVENTS.md, "The consumer"); a bound one keeps its own.
const (
	defaultMaxDeliver    = 10
	defaultAckWait       = 30 * time.Second
	defaultMaxAckPending = 1000
)

func (p *processor) durable() string { return "processor-" + p.name }

// bind binds a pull subscription to the processor's durable consumer, whatever its deliver policy (an operator may
// have rewound it), creating it at new events when there is none. Until the events stream exists it waits.
func (p *processor) bind() {
	for attempt := 1; ; attempt++ {
		err := p.tryBind()
		if err == nil {
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			log.Printf("%s: waiting for the %s stream and consumer %s: %v", p.name, p.stream, p.durable(), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (p *processor) tryBind() error {
	info, err := p.js.ConsumerInfo(p.stream, p.durable())
	if errors.Is(err, nats.ErrConsumerNotFound) {
		// Created here, then bound: a subscription that let the library create its consumer deletes it when it is
		// unsubscribed or drained. Another replica creating it at the same moment makes this fail: bind next time.
		info, err = p.js.AddConsumer(p.stream, &nats.ConsumerConfig{
			Durable:       p.durable(),
			DeliverPolicy: nats.DeliverNewPolicy,
			AckPolicy:     nats.AckExplicitPolicy,
			FilterSubject: p.filter,
			AckWait:       defaultAckWait,
			MaxDeliver:    defaultMaxDeliver,
			MaxAckPending: defaultMaxAckPending,
		})
	}
	if err != nil {
		return err
	}
	sub, err := p.js.PullSubscribe(info.Config.FilterSubject, p.durable(), nats.Bind(p.stream, p.durable()))
	if err != nil {
		return err
	}
	p.sub, p.maxDeliver, p.ackWait = sub, info.Config.MaxDeliver, info.Config.AckWait
	if p.ackWait <= 0 {
		p.ackWait = defaultAckWait
	}
	return nil
}

// recoverFetch is what a failed fetch leads to: a pause that grows while fetches keep failing (NATS unreachable),
// and, when the consumer is gone or was replaced (an operator's rewind deletes it and creates it again:
// docs/ARCHITECTURE.md, "Rewinding a processor"), binding again.
func (p *processor) recoverFetch(err error, failures int) {
	log.Printf("%s: fetch: %v", p.name, err)
	delay := 100 * time.Millisecond << uint(min(failures-1, 6))
	time.Sleep(delay)
	_, infoErr := p.js.ConsumerInfo(p.stream, p.durable())
	replaced := errors.Is(err, nats.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders)
	if infoErr == nil && !replaced {
		return
	}
	if infoErr != nil && !errors.Is(infoErr, nats.ErrConsumerNotFound) {
		return // NATS itself is not answering: fetch again after the pause
	}
	// A rewind creates the consumer again within moments: give it that long before creating one at new events.
	for deadline := time.Now().Add(2 * time.Second); errors.Is(infoErr, nats.ErrConsumerNotFound) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		_, infoErr = p.js.ConsumerInfo(p.stream, p.durable())
	}
	log.Printf("%s: binding to consumer %s again", p.name, p.durable())
	_ = p.sub.Unsubscribe() // only the subscription: the consumer is not the library's to delete
	p.bind()
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// waitForBucket opens a KV bucket the gateway creates, waiting until it exists.
func waitForBucket(js nats.JetStreamContext, name, bucket string) nats.KeyValue {
	for attempt := 1; ; attempt++ {
		kv, err := js.KeyValue(bucket)
		if err == nil {
			return kv
		}
		if attempt == 1 || attempt%20 == 0 {
			log.Printf("%s: waiting for the KV bucket %s: %v", name, bucket, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// pausedIndex is what the pause index says of a subject: a quick refusal, never permission (it may lag the log).
func (p *processor) pausedIndex(subject string) bool {
	key := strings.ReplaceAll(strings.TrimPrefix(subject, "events."), "~", "=")
	entry, err := p.status.Get(key)
	if err != nil {
		return false
	}
	var value struct {
		Paused bool `json:"paused"`
	}
	return json.Unmarshal(entry.Value(), &value) == nil && value.Paused
}

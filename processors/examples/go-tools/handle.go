package main

import (
	"encoding/json"
	"errors"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// cause is an event this processor reacts to: where it is and what it says.
type cause struct {
	subject string
	path    string
	offset  uint64
	body    storedBody
}

// permanentError is an error retrying cannot fix: the event is given up on at once.
type permanentError struct{ error }

// handle takes one message to its end: acked when done or not this processor's business, nak'd with a growing
// delay to be tried again, or given up on (docs/EVENTS.md, "Giving up").
func (p *processor) handle(msg *nats.Msg) {
	meta, err := msg.Metadata()
	// Only the events of agent streams: a `durable.<id>` message is a Durable Streams stream's raw data, which an
	// unfiltered consumer delivers too.
	if err != nil || !strings.HasPrefix(msg.Subject, "events.") {
		_ = msg.Ack()
		return
	}
	var body storedBody
	// A body that is not an event (every reader sees stream/invalid-event) and an event a fork inherited (history:
	// docs/EVENTS.md, "Forks") are not reacted to.
	if json.Unmarshal(msg.Data, &body) != nil || body.ForkedFrom != nil {
		_ = msg.Ack()
		return
	}
	c := cause{subject: msg.Subject, path: streamPath(msg.Subject), offset: meta.Sequence.Stream, body: body}
	switch body.Type {
	case "agent/tool-call-requested":
		err = p.answerCall(msg, c)
	case "stream/forked":
		err = p.takeOverFork(msg, c)
	case "stream/resumed":
		err = p.takeOverOnResume(msg, c)
	default:
		_ = msg.Ack()
		return
	}
	if err == nil {
		_ = msg.Ack()
		return
	}
	var permanent permanentError
	if errors.As(err, &permanent) || (p.maxDeliver > 0 && meta.NumDelivered >= uint64(p.maxDeliver)) {
		p.giveUp(msg, c, meta.NumDelivered, err)
		return
	}
	delay := backoff(meta.NumDelivered)
	log.Printf("%s: %s at offset %d, delivery %d: %v (trying again in %v)", p.name, c.path, c.offset, meta.NumDelivered, err, delay)
	_ = msg.NakWithDelay(delay)
}

// backoff is the delay before the next delivery: 250 ms, doubling with each delivery, at most 30 s. An event that
// keeps failing does not hold the others: they are fetched meanwhile.
func backoff(delivered uint64) time.Duration {
	delay := 250 * time.Millisecond
	for n := uint64(1); n < delivered && delay < 30*time.Second; n++ {
		delay *= 2
	}
	if delay > 30*time.Second {
		delay = 30 * time.Second
	}
	return delay
}

// giveUp records in the stream that this processor gave up on the event, then terminates the message, so that
// it is not delivered again (docs/EVENTS.md, "Giving up").
func (p *processor) giveUp(msg *nats.Msg, c cause, delivered uint64, reason error) {
	log.Printf("%s: giving up on %s at offset %d (delivery %d): %v", p.name, c.path, c.offset, delivered, reason)
	payload, _ := json.Marshal(map[string]any{"processor": p.name, "message": reason.Error(), "offset": c.offset})
	key := p.name + ":" + strconv.FormatUint(c.offset, 10) + ":error"
	body, _ := json.Marshal(storedBody{
		Type:           "stream/error-occurred",
		Payload:        payload,
		IdempotencyKey: key,
		Source:         &source{Processor: p.name, CausationOffset: c.offset},
		CreatedAt:      now(),
	})
	if _, err := p.js.Publish(c.subject, body, nats.MsgId(c.path+"|"+key)); err != nil {
		// Not recorded: let JetStream deliver it again rather than lose the failure silently.
		log.Printf("%s: could not record giving up on %s at offset %d: %v", p.name, c.path, c.offset, err)
		_ = msg.NakWithDelay(backoff(delivered))
		return
	}
	// No reason after +TERM: nats-server 2.9 ignores a termination that carries one.
	_ = msg.Term()
}

// now is a createdAt: RFC 3339 UTC with milliseconds and `Z` (docs/EVENTS.md, "createdAt").
func now() string {
	return time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
}

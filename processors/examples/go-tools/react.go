package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// Decisions made again at once after losing the race for the expected offset, then with growing pauses ...
	maxDecisionAttempts = 8
	// ... for this long in all, before the event is nak'd (docs/EVENTS.md, "A processor in another language"):
	// meanwhile the stream's later events wait behind it, so a busy stream does not reorder its reactions.
	holdInLane = 20 * time.Second
)

// answer is one agent/tool-call-settled this processor decided on. index is the last part of its key
// `<name>:<cause offset>:<index>`, the same on every attempt.
type answer struct {
	index   int
	callID  string
	payload json.RawMessage
}

// decision is what a read of the stream says to do about an event.
type decision struct {
	last    uint64 // the subject's last offset when read: the first answer expects it
	paused  bool   // at the time of the decision, which is what counts (docs/EVENTS.md, "Pauses")
	reacted bool   // an event of this processor names the event as its cause
	answers []answer
}

// answerCall answers a live call of one of this processor's tools; nothing for other tools' calls. A call it
// cannot read (readCall says whose that is) is given up on, unless the stream is paused or this processor
// already reacted to it (gave up on it before a rewind): the same checks as for an answer.
func (p *processor) answerCall(msg *nats.Msg, c cause) error {
	call, ours, unreadable := readCall(c.body.Payload)
	if unreadable == nil && !ours {
		return nil
	}
	return p.decideAndAppend(msg, c, func() (decision, error) {
		after, err := scanAfter(p.js, p.stream, c.subject, c.offset, p.name)
		if err != nil {
			return decision{}, fmt.Errorf("reading %s after offset %d: %w", c.path, c.offset, err)
		}
		// The log after the event is the latest word on a pause; with none there, the index (which may lag, never lead).
		d := decision{last: after.last, reacted: after.reacted, paused: after.pauses.paused || (!after.pauses.seen && p.pausedIndex(c.subject))}
		if d.reacted || d.paused {
			return d, nil
		}
		if unreadable != nil {
			return d, permanentError{unreadable}
		}
		payload, err := settledPayload(call)
		if err != nil {
			return d, permanentError{err}
		}
		d.answers = []answer{{index: 0, callID: call.CallID, payload: payload}}
		return d, nil
	})
}

// decideAndAppend is the decide-and-append loop of docs/EVENTS.md for one event: decide from the stream as it is
// now, then publish the answers with the expected offset, so that anything stored in between (a pause, another
// replica's answer) fails the publish and the decision is made again.
func (p *processor) decideAndAppend(msg *nats.Msg, c cause, decide func() (decision, error)) error {
	defer keepWorking(msg, p.ackWait)()
	holdUntil := time.Now().Add(holdInLane)
	for attempt := 1; ; attempt++ {
		d, err := decide()
		if err != nil {
			return err
		}
		switch {
		case d.paused:
			log.Printf("%s: %s is paused; not reacting to offset %d", p.name, c.path, c.offset)
			return nil
		case len(d.answers) == 0 && d.reacted:
			log.Printf("%s: already answered %s at offset %d (a redelivery)", p.name, c.path, c.offset)
			return nil
		case len(d.answers) == 0:
			return nil
		}
		err = p.publishAnswers(c, d)
		if err == nil {
			return nil
		}
		if !wrongLastSequence(err) {
			return err
		}
		if attempt >= maxDecisionAttempts {
			if time.Now().After(holdUntil) {
				return errors.New("the stream kept moving while deciding")
			}
			time.Sleep(time.Duration(min(1000, 20<<uint(min(attempt-maxDecisionAttempts, 6)))) * time.Millisecond)
		}
	}
}

// publishAnswers stores the answers in order, each keyed (its key in the body and, with the stream path, as
// Nats-Msg-Id: a repeat within the duplicate window is dropped) and naming the event as its cause. The first one
// expects the subject's last offset as read, each next one the offset of the one before, so none lands on a
// stream that moved.
func (p *processor) publishAnswers(c cause, d decision) error {
	expected := d.last
	for _, a := range d.answers {
		key := p.name + ":" + strconv.FormatUint(c.offset, 10) + ":" + strconv.Itoa(a.index)
		// The trace context travels with the events (metadata.traceparent): the answer joins the cause's trace.
		body, err := json.Marshal(storedBody{
			Type:           "agent/tool-call-settled",
			Payload:        a.payload,
			Metadata:       map[string]any{"traceparent": reactionTraceparent(c.path, c.body, c.offset, p.name)},
			IdempotencyKey: key,
			Source:         &source{Processor: p.name, CausationOffset: c.offset},
			CreatedAt:      now(),
		})
		if err != nil {
			return permanentError{err}
		}
		ack, err := p.js.Publish(c.subject, body, nats.MsgId(c.path+"|"+key), nats.ExpectLastSequencePerSubject(expected))
		if err != nil {
			return err
		}
		// A duplicate (stored by an earlier attempt) leaves the subject's last offset where it was.
		if !ack.Duplicate {
			expected = ack.Sequence
		}
		log.Printf("%s: settled %s for %s at offset %d (key %s)", p.name, a.callID, c.path, ack.Sequence, key)
	}
	return nil
}

// wrongLastSequence is JetStream's answer to a publish whose expected offset is not the subject's last: 10071, or
// 10164 when the server could not tell.
func wrongLastSequence(err error) bool {
	var jsErr nats.JetStreamError
	if !errors.As(err, &jsErr) || jsErr.APIError() == nil {
		return false
	}
	code := jsErr.APIError().ErrorCode
	return code == nats.JSErrCodeStreamWrongLastSequence || code == 10164
}

// keepWorking tells JetStream every ackWait/2 that the message is still in hand (+WPI), so that a long decision
// (a fork's history read, a stream that keeps moving) is not delivered again meanwhile. Call the result to stop.
func keepWorking(msg *nats.Msg, ackWait time.Duration) func() {
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(ackWait / 2)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

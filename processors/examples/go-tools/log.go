package main

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// eachEvent reads a subject's events from offset `from` on, one direct get (next_by_subj) at a time, and hands each
// to visit (a body that is not an event arrives empty). It returns the last offset read, `from - 1` for none.
func eachEvent(js nats.JetStreamContext, stream, subject string, from uint64, visit func(offset uint64, body storedBody)) (uint64, error) {
	return eachEventWhile(js, stream, subject, from, func(offset uint64, body storedBody) bool {
		visit(offset, body)
		return true
	})
}

// eachEventWhile is eachEvent that stops after the first event visit returns false for (the last offset read).
func eachEventWhile(js nats.JetStreamContext, stream, subject string, from uint64, visit func(offset uint64, body storedBody) bool) (uint64, error) {
	last := from - 1
	for seq := from; ; {
		m, err := js.GetMsg(stream, seq, nats.DirectGetNext(subject))
		if errors.Is(err, nats.ErrMsgNotFound) {
			return last, nil
		}
		if err != nil {
			return last, err
		}
		var body storedBody
		if json.Unmarshal(m.Data, &body) != nil {
			body = storedBody{}
		}
		last = m.Sequence
		if !visit(m.Sequence, body) {
			return last, nil
		}
		seq = m.Sequence + 1
	}
}

// pauses follows the pause rule (docs/EVENTS.md, "Pauses"): paused from a stream/paused or agent/paused until the
// next stream/resumed.
type pauses struct {
	seen   bool // a pause or resume was read
	paused bool // the last one read was a pause
}

func (s *pauses) add(body storedBody) {
	switch body.Type {
	case "stream/paused", "agent/paused":
		s.seen, s.paused = true, true
	case "stream/resumed":
		s.seen, s.paused = true, false
	}
}

// reactedTo says whether an event is this processor's reaction to the event at offset: its `source` names it.
func reactedTo(body storedBody, name string, offset uint64) bool {
	return body.Source != nil && body.Source.Processor == name && body.Source.CausationOffset == offset
}

// scan is what a subject's events after an event say: whether this processor already reacted to it (how a
// redelivery after the duplicate window is recognised), whether a pause or resume came after it, and the subject's
// last offset, the expected offset of the reaction.
type scan struct {
	last    uint64
	reacted bool
	pauses  pauses
}

func scanAfter(js nats.JetStreamContext, stream, subject string, offset uint64, name string) (scan, error) {
	var result scan
	last, err := eachEvent(js, stream, subject, offset+1, func(_ uint64, body storedBody) {
		result.reacted = result.reacted || reactedTo(body, name, offset)
		result.pauses.add(body)
	})
	result.last = last
	return result, err
}

// streamPath decodes a subject `events.<tokens>` into `/a/b` (docs/EVENTS.md: `~2E` is `.`, `~7E` is `~`).
func streamPath(subject string) string {
	tokens := strings.Split(subject, ".")[1:]
	for i, token := range tokens {
		tokens[i] = strings.NewReplacer("~2E", ".", "~7E", "~").Replace(token)
	}
	return "/" + strings.Join(tokens, "/")
}

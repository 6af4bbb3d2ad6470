package main

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// takeOverFork answers, as the reaction to a fork's stream/forked, the calls of this processor's tools that the
// fork inherited open: requested in the history and not settled by the fork point. Their requests are history
// (never reacted to), so without this they would stay open until their timeout (docs/EVENTS.md, "Forks").
// Each is answered as a live call is, with `source` naming the stream/forked event and the key
// `<name>:<forked offset>:<i>`. A fork paused then (the fork of a paused stream) is taken over on its first
// stream/resumed instead (takeOverOnResume).
func (p *processor) takeOverFork(msg *nats.Msg, c cause) error {
	return p.takeOver(msg, c, false)
}

// takeOverOnResume takes over, on a stream/resumed, a fork that was not taken over on its stream/forked because it
// was paused then: the same takeover, still named after the stream/forked event (its `source` and its keys), so
// that a takeover on stream/forked and one on a resume can never both store. Nothing for a stream that is not a
// fork (told by its first event alone), and nothing once an event of this processor names the stream/forked event
// as its cause: the takeover was done, on stream/forked or on an earlier resume.
func (p *processor) takeOverOnResume(msg *nats.Msg, c cause) error {
	forked, found, err := findForked(p.js, p.stream, c.subject, c.path)
	if err != nil {
		return fmt.Errorf("looking for the stream/forked of %s: %w", c.path, err)
	}
	if !found || forked.offset > c.offset {
		return nil
	}
	return p.takeOver(msg, forked, true)
}

// takeOver is the takeover of the fork whose stream/forked is forked, made on msg (the stream/forked itself, or a
// stream/resumed): decided from the whole log, paused or not at the time of the decision, and published with the
// expected offset. onlyOnce skips it when this processor already reacted to the stream/forked event; on
// stream/forked itself the redelivery of a batch cut short goes on with the calls still open.
func (p *processor) takeOver(msg *nats.Msg, forked cause, onlyOnce bool) error {
	return p.decideAndAppend(msg, forked, func() (decision, error) {
		fork, err := readFork(p.js, p.stream, forked.subject, forked.offset, p.name)
		if err != nil {
			return decision{}, fmt.Errorf("reading the fork %s: %w", forked.path, err)
		}
		// The whole log was read, inherited pauses included (the fork of a paused stream is paused): no index needed.
		d := decision{last: fork.last, paused: fork.pauses.paused, reacted: fork.reacted}
		if d.paused || (onlyOnce && d.reacted) {
			return d, nil
		}
		for i, call := range fork.openAtFork {
			// Settled since the fork: by an earlier attempt of this one (a batch cut short), or by its timeout.
			if fork.settled[call.CallID] {
				continue
			}
			payload, err := settledPayload(call)
			if err != nil {
				return d, permanentError{err}
			}
			d.answers = append(d.answers, answer{index: i, callID: call.CallID, payload: payload})
		}
		return d, nil
	})
}

// findForked finds a fork's stream/forked: its first event of its own, after the inherited ones. found is false
// for a stream that is not a fork (its first event has no forkedFrom: one read) and for a fork left without
// stream/forked (its filling was interrupted: nothing is taken over there).
func findForked(js nats.JetStreamContext, stream, subject, path string) (forked cause, found bool, err error) {
	inherited := false
	_, err = eachEventWhile(js, stream, subject, 1, func(offset uint64, body storedBody) bool {
		if body.ForkedFrom != nil {
			inherited = true
			return true
		}
		forked = cause{subject: subject, path: path, offset: offset, body: body}
		found = inherited && body.Type == "stream/forked"
		return false
	})
	if err != nil || !found {
		return cause{}, false, err
	}
	return forked, true, nil
}

// fork is what a fork's log says, read from its first event to its last.
type fork struct {
	last    uint64
	pauses  pauses
	reacted bool // an event of this processor names the stream/forked event as its cause
	// The calls of this processor's tools open at the fork point, in offset order. A call's place in this list is
	// the last part of its answer's key: the same on every attempt, whatever was settled since.
	openAtFork []toolCall
	settled    map[string]bool // every settled callId, before the fork point and after
}

func readFork(js nats.JetStreamContext, stream, subject string, forked uint64, name string) (fork, error) {
	result := fork{settled: map[string]bool{}}
	var requested []toolCall
	settledAtFork := map[string]bool{}
	last, err := eachEvent(js, stream, subject, 1, func(offset uint64, body storedBody) {
		result.reacted = result.reacted || reactedTo(body, name, forked)
		result.pauses.add(body)
		switch body.Type {
		case "agent/tool-call-requested":
			// Only the history's: a call requested after the fork point is answered as the live call it is. A
			// broken one was given up on in the source, or is another processor's.
			if call, ours, err := readCall(body.Payload); offset < forked && body.ForkedFrom != nil && ours && err == nil {
				requested = append(requested, call)
			}
		case "agent/tool-call-settled":
			var settled struct {
				CallID string `json:"callId"`
			}
			if json.Unmarshal(body.Payload, &settled) == nil && settled.CallID != "" {
				result.settled[settled.CallID] = true
				if offset < forked {
					settledAtFork[settled.CallID] = true
				}
			}
		}
	})
	result.last = last
	seen := map[string]bool{}
	for _, call := range requested {
		if !settledAtFork[call.CallID] && !seen[call.CallID] {
			result.openAtFork = append(result.openAtFork, call)
		}
		seen[call.CallID] = true
	}
	return result, err
}

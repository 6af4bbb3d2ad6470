// Command go-tools is an agentmesh processor written in Go with nothing but
// the official NATS client, following docs/EVENTS.md: it owns two tools,
// get_time and calculate, reads agent/tool-call-requested from a durable
// JetStream consumer and writes agent/tool-call-settled.
package main

import (
	"encoding/json"
	"errors"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
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

type toolCallRequested struct {
	CallID    string `json:"callId"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type pauseStatus struct {
	Paused bool `json:"paused"`
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	natsURL := env("NATS_URL", nats.DefaultURL)
	streamName := env("EVENTS_STREAM", "EVENTS")
	filter := env("PROCESSOR_SUBJECT_FILTER", "events.>")
	name := env("PROCESSOR_NAME", processorName)

	nc, err := nats.Connect(natsURL, nats.Name("agentmesh-"+name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		log.Fatalf("%s: connect: %v", name, err)
	}
	defer nc.Drain()
	js, err := nc.JetStream()
	if err != nil {
		log.Fatalf("%s: jetstream: %v", name, err)
	}
	// A durable pull consumer shared by every replica, starting at new events.
	// The events stream may not exist yet (the gateway creates it): wait for it.
	var sub *nats.Subscription
	for {
		sub, err = subscribe(js, streamName, "processor-"+name, filter)
		if err == nil {
			break
		}
		log.Printf("%s: waiting for the %s stream: %v", name, streamName, err)
		time.Sleep(500 * time.Millisecond)
	}
	status, _ := js.KeyValue("agentmesh-stream-status")
	log.Printf("%s processor running (consumer processor-%s on %s)", name, name, filter)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	for {
		select {
		case <-stop:
			log.Printf("%s processor stopped", name)
			return
		default:
		}
		msgs, err := sub.Fetch(32, nats.MaxWait(time.Second))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			log.Printf("%s: fetch: %v", name, err)
			continue
		}
		for _, msg := range msgs {
			if err := handle(js, status, streamName, name, msg); err != nil {
				log.Printf("%s: %v (will retry)", name, err)
				_ = msg.NakWithDelay(time.Second)
				continue
			}
			_ = msg.Ack()
		}
	}
}

// subscribe binds to the processor's durable consumer when it exists, whatever its deliver policy (an operator may
// have rewound it), and otherwise creates it at new events (docs/EVENTS.md, "A processor in another language").
func subscribe(js nats.JetStreamContext, stream, durable, filter string) (*nats.Subscription, error) {
	if info, err := js.ConsumerInfo(stream, durable); err == nil {
		return js.PullSubscribe(info.Config.FilterSubject, durable, nats.Bind(stream, durable))
	}
	return js.PullSubscribe(filter, durable, nats.BindStream(stream), nats.DeliverNew(), nats.AckExplicit(), nats.MaxDeliver(10))
}

// scan is what the subject's events after an event say: whether this processor already reacted to it (its `source`
// names it: how a redelivery after the duplicate window is recognised), whether a pause or resume came after it, and
// the subject's last offset, the expected offset of the reaction.
type scan struct {
	last       uint64
	reacted    bool
	sawPause   bool
	pausedLast bool
}

func scanAfter(js nats.JetStreamContext, stream, subject string, offset uint64, name string) (scan, error) {
	result := scan{last: offset}
	for seq := offset + 1; ; {
		m, err := js.GetMsg(stream, seq, nats.DirectGetNext(subject))
		if errors.Is(err, nats.ErrMsgNotFound) {
			return result, nil
		}
		if err != nil {
			return result, err
		}
		var body storedBody
		if json.Unmarshal(m.Data, &body) == nil {
			if body.Source != nil && body.Source.Processor == name && body.Source.CausationOffset == offset {
				result.reacted = true
			}
			switch body.Type {
			case "stream/paused", "agent/paused":
				result.sawPause, result.pausedLast = true, true
			case "stream/resumed":
				result.sawPause, result.pausedLast = true, false
			}
		}
		result.last = m.Sequence
		seq = m.Sequence + 1
	}
}

func wrongLastSequence(err error) bool {
	var jsErr nats.JetStreamError
	return errors.As(err, &jsErr) && jsErr.APIError() != nil && jsErr.APIError().ErrorCode == nats.JSErrCodeStreamWrongLastSequence
}

func handle(js nats.JetStreamContext, status nats.KeyValue, streamName, name string, msg *nats.Msg) error {
	var body storedBody
	if err := json.Unmarshal(msg.Data, &body); err != nil || body.Type != "agent/tool-call-requested" || body.ForkedFrom != nil {
		return nil
	}
	var call toolCallRequested
	if err := json.Unmarshal(body.Payload, &call); err != nil {
		return nil
	}
	result, toolErr, owned := runTool(call)
	if !owned {
		return nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	path := streamPath(msg.Subject)
	payload := map[string]any{"callId": call.CallID}
	if toolErr != nil {
		payload["error"] = toolErr.Error()
	} else {
		payload["result"] = result
	}
	encoded, _ := json.Marshal(payload)
	offset := meta.Sequence.Stream
	key := name + ":" + strconv.FormatUint(offset, 10) + ":0"
	// The trace context travels with the events (metadata.traceparent): this answer joins the turn's trace.
	reaction, _ := json.Marshal(storedBody{
		Type:           "agent/tool-call-settled",
		Payload:        encoded,
		Metadata:       map[string]any{"traceparent": reactionTraceparent(path, body, offset, name)},
		IdempotencyKey: key,
		Source:         &source{Processor: name, CausationOffset: offset},
		CreatedAt:      time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	})
	// The dedupe id is namespaced by stream path, so a redelivery within the window stores nothing twice; after it,
	// the event's `source` in the log says it was answered. The expected offset makes the check and the publish one
	// decision: anything stored in between (a pause) fails the publish, and the check is made again.
	for attempt := 1; ; attempt++ {
		after, err := scanAfter(js, streamName, msg.Subject, offset, name)
		if err != nil {
			return err
		}
		if after.reacted {
			log.Printf("%s: already answered %s at offset %d (a redelivery)", name, path, offset)
			return nil
		}
		// The log after the event is the latest word on a pause; before it, the index (which may lag, never lead).
		if (after.sawPause && after.pausedLast) || (!after.sawPause && paused(status, msg.Subject)) {
			log.Printf("%s: %s is paused; not reacting", name, path)
			return nil
		}
		_, err = js.Publish(msg.Subject, reaction, nats.MsgId(path+"|"+key), nats.ExpectLastSequencePerSubject(after.last))
		if err == nil {
			break
		}
		if !wrongLastSequence(err) || attempt >= 20 {
			return err
		}
		time.Sleep(time.Duration(attempt*10) * time.Millisecond)
	}
	log.Printf("%s: settled %s (%s) for %s at offset %d", name, call.CallID, call.Name, path, offset)
	return nil
}

// streamPath decodes a subject `events.<tokens>` into `/a/b` (docs/EVENTS.md: `~2E` is `.`, `~7E` is `~`).
func streamPath(subject string) string {
	tokens := strings.Split(subject, ".")[1:]
	for i, token := range tokens {
		tokens[i] = strings.NewReplacer("~2E", ".", "~7E", "~").Replace(token)
	}
	return "/" + strings.Join(tokens, "/")
}

func paused(status nats.KeyValue, subject string) bool {
	if status == nil {
		return false
	}
	key := strings.ReplaceAll(strings.TrimPrefix(subject, "events."), "~", "=")
	entry, err := status.Get(key)
	if err != nil {
		return false
	}
	var value pauseStatus
	return json.Unmarshal(entry.Value(), &value) == nil && value.Paused
}

func runTool(call toolCallRequested) (any, error, bool) {
	switch call.Name {
	case "get_time":
		return map[string]string{"utc": time.Now().UTC().Format(time.RFC3339)}, nil, true
	case "calculate":
		var args struct {
			Expression string `json:"expression"`
		}
		if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
			return nil, errors.New("arguments must be {\"expression\": \"...\"}"), true
		}
		value, err := evaluate(args.Expression)
		if err != nil {
			return nil, err, true
		}
		return map[string]float64{"value": value}, nil, true
	}
	return nil, nil, false
}

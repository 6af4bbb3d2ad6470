package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// toolCall is the payload of agent/tool-call-requested (shared/contract/events/agent.ts), the fields this reads.
type toolCall struct {
	CallID    string
	Name      string
	Arguments string
}

// tools are the tools this processor owns: every other call is another processor's.
var tools = map[string]func(arguments string) (any, error){
	"get_time":  getTime,
	"calculate": calculate,
}

// errNotACall is a tool-call-requested payload that cannot be anyone's call.
var errNotACall = errors.New("not a tool call")

// readCall reads a tool-call-requested payload. ours is false, with no error, for a call of a tool this processor
// does not own: another processor's to answer, or to give up on. An error is a payload retrying cannot fix.
//
// Whose call a broken payload is decides who says so. A payload that is not an object, or has no string `name`,
// names no tool: it is nobody's call, so every processor that reacts to the type gives up on it, each once (its
// error event's key is `<name>:<offset>:error`): a reader of the stream sees why the call was never answered. A
// call of another processor's tool is left alone however broken its other fields are: its owner judges them, and
// the stream gets no error event from every processor that merely saw it.
func readCall(payload json.RawMessage) (call toolCall, ours bool, err error) {
	var fields map[string]json.RawMessage
	if len(payload) == 0 {
		payload = json.RawMessage("{}") // a stored event's payload defaults to {}
	}
	if err := json.Unmarshal(payload, &fields); err != nil || fields == nil {
		return call, false, fmt.Errorf("%w: the payload is not a JSON object", errNotACall)
	}
	if !stringField(fields, "name", &call.Name) {
		return call, false, fmt.Errorf("%w: the payload has no string name", errNotACall)
	}
	if _, owned := tools[call.Name]; !owned {
		return call, false, nil
	}
	if !stringField(fields, "callId", &call.CallID) || call.CallID == "" {
		return call, true, fmt.Errorf("a %s call without a callId string", call.Name)
	}
	if _, given := fields["arguments"]; given && !stringField(fields, "arguments", &call.Arguments) {
		return call, true, fmt.Errorf("a %s call whose arguments are not a string", call.Name)
	}
	return call, true, nil
}

// stringField reads a field that must be a JSON string (not missing, not null).
func stringField(fields map[string]json.RawMessage, name string, into *string) bool {
	raw, given := fields[name]
	return given && len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, into) == nil
}

// settledPayload is the payload of the call's agent/tool-call-settled: its result, or the tool's error. An error
// returned here is one retrying cannot fix (a result JSON cannot hold).
func settledPayload(call toolCall) (json.RawMessage, error) {
	payload := map[string]any{"callId": call.CallID}
	if result, err := tools[call.Name](call.Arguments); err != nil {
		payload["error"] = err.Error()
	} else {
		payload["result"] = result
	}
	encoded, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("the %s result cannot be written as JSON: %v", call.Name, err)
	}
	return encoded, nil
}

func getTime(string) (any, error) {
	return map[string]string{"utc": time.Now().UTC().Format(time.RFC3339)}, nil
}

func calculate(arguments string) (any, error) {
	var args struct {
		Expression string `json:"expression"`
	}
	if err := json.Unmarshal([]byte(arguments), &args); err != nil {
		return nil, errors.New("arguments must be {\"expression\": \"...\"}")
	}
	value, err := evaluate(args.Expression)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"value": value}, nil
}

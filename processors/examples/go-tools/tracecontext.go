package main

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
)

// W3C Trace Context, version 00 (docs/EVENTS.md, "Trace context").
var traceparentPattern = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// digestHex is the start of a SHA-256, as agentmesh derives trace and span ids from the log
// (shared/traces/trace-ids.ts): any replica, and any later export, computes the same ids.
func digestHex(text string, bytes int) string {
	sum := sha256.Sum256([]byte(text))
	id := hex.EncodeToString(sum[:bytes])
	if strings.Trim(id, "0") == "" {
		id = id[:len(id)-1] + "1"
	}
	return id
}

// reactionTraceparent is the traceparent of this processor's reaction to the event at offset: the trace of the
// turn the event belongs to (from the event's own traceparent when a processor wrote it, else the trace the event
// roots) and the span of this reaction, which the traces processor exports as `react <name>` in that trace.
func reactionTraceparent(path string, cause storedBody, offset uint64, name string) string {
	traceID := ""
	if cause.Source != nil {
		if value, ok := cause.Metadata["traceparent"].(string); ok {
			if m := traceparentPattern.FindStringSubmatch(value); m != nil && strings.Trim(m[1], "0") != "" {
				traceID = m[1]
			}
		}
	}
	at := strconv.FormatUint(offset, 10)
	if traceID == "" {
		traceID = digestHex("agentmesh/trace\n"+path+"\n"+at, 16)
	}
	spanID := digestHex("agentmesh/span\n"+path+"\nreact\n"+name+"\n"+at, 8)
	return "00-" + traceID + "-" + spanID + "-01"
}

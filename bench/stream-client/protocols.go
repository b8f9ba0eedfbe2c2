package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// onContent is called once per content delta, with the receive time taken as soon as the
// bytes that complete the event have been read (before any decoding).
type onContent func(at int64, text string)

// readStream reads one streamed response to its end and reports each content delta.
// It returns an error for anything but a complete, successful stream.
func readStream(mode string, resp *http.Response, emit onContent) error {
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("http %d: %s", resp.StatusCode, strings.TrimSpace(string(head)))
	}
	switch mode {
	case "sse":
		return readSSE(resp.Body, emit)
	case "connect":
		return readConnect(resp.Body, emit)
	case "grpc":
		return readGRPC(resp, emit)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

var (
	dataPrefix    = []byte("data: ")
	donePayload   = []byte("[DONE]")
	contentMarker = []byte(`"content":"`)
)

// readSSE reads an OpenAI chat.completion.chunk event stream (direct, pass-through, Portkey,
// Sluice's OpenAI route). Our fake's content never contains escapes, so a byte search suffices.
func readSSE(body io.Reader, emit onContent) error {
	br := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			at := monoNow()
			if trimmed := bytes.TrimRight(line, "\r\n"); bytes.HasPrefix(trimmed, dataPrefix) {
				payload := trimmed[len(dataPrefix):]
				if bytes.Equal(payload, donePayload) {
					_, _ = io.Copy(io.Discard, br) // drain so the connection can be reused
					return nil
				}
				if bytes.HasPrefix(payload, []byte(`{"error"`)) {
					return fmt.Errorf("sse error event: %.200s", payload)
				}
				if i := bytes.Index(payload, contentMarker); i >= 0 {
					rest := payload[i+len(contentMarker):]
					if j := bytes.IndexByte(rest, '"'); j > 0 {
						emit(at, string(rest[:j]))
					}
				}
			}
		}
		if err == io.EOF {
			return errors.New("stream ended without [DONE]")
		}
		if err != nil {
			return err
		}
	}
}

// readFrame reads one length-prefixed message (Connect streaming and gRPC share the framing:
// 1 flag byte, 4-byte big-endian length, payload).
func readFrame(r io.Reader, header []byte) (flags byte, payload []byte, err error) {
	if _, err = io.ReadFull(r, header[:5]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, binary.BigEndian.Uint32(header[1:5]))
	_, err = io.ReadFull(r, payload)
	return header[0], payload, err
}

// readConnect reads a Connect streaming response (application/connect+json): messages, then an
// end-of-stream frame (flag 0x02) holding `{}` or `{"error":…}`.
func readConnect(body io.Reader, emit onContent) error {
	br := bufio.NewReaderSize(body, 64<<10)
	header := make([]byte, 5)
	for {
		flags, payload, err := readFrame(br, header)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("connect stream ended without end-of-stream frame")
			}
			return err
		}
		at := monoNow()
		if flags&0x02 != 0 {
			if bytes.Contains(payload, []byte(`"error"`)) {
				return fmt.Errorf("connect error: %.200s", payload)
			}
			_, _ = io.Copy(io.Discard, br)
			return nil
		}
		var event struct {
			Delta *struct {
				Text string `json:"text"`
			} `json:"delta"`
		}
		if err := json.Unmarshal(payload, &event); err != nil {
			return fmt.Errorf("connect message: %w", err)
		}
		if event.Delta != nil && event.Delta.Text != "" {
			emit(at, event.Delta.Text)
		}
	}
}

// readGRPC reads StreamCompleteResponse messages over gRPC, then checks grpc-status in the
// trailers (or in the headers, for a trailers-only error response).
func readGRPC(resp *http.Response, emit onContent) error {
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	header := make([]byte, 5)
	for {
		_, payload, err := readFrame(br, header)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		at := monoNow()
		if text := grpcDeltaText(payload); text != "" {
			emit(at, text)
		}
	}
	return grpcStatus(resp)
}

// grpcDeltaText extracts StreamCompleteResponse.delta (field 2) → ContentDelta.text (field 1).
func grpcDeltaText(msg []byte) string {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return ""
		}
		msg = msg[n:]
		if num == 2 && typ == protowire.BytesType {
			inner, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return ""
			}
			for len(inner) > 0 {
				f, t, k := protowire.ConsumeTag(inner)
				if k < 0 {
					return ""
				}
				inner = inner[k:]
				if f == 1 && t == protowire.BytesType {
					text, _ := protowire.ConsumeBytes(inner)
					return string(text)
				}
				skip := protowire.ConsumeFieldValue(f, t, inner)
				if skip < 0 {
					return ""
				}
				inner = inner[skip:]
			}
			return ""
		}
		skip := protowire.ConsumeFieldValue(num, typ, msg)
		if skip < 0 {
			return ""
		}
		msg = msg[skip:]
	}
	return ""
}

// grpcStatus turns grpc-status / grpc-message into an error unless the status is 0 (OK).
func grpcStatus(resp *http.Response) error {
	status := resp.Trailer.Get("Grpc-Status")
	message := resp.Trailer.Get("Grpc-Message")
	if status == "" {
		status = resp.Header.Get("Grpc-Status")
		message = resp.Header.Get("Grpc-Message")
	}
	if status != "0" {
		return fmt.Errorf("grpc-status %q: %s", status, message)
	}
	return nil
}

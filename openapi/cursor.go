package openapi

import (
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner"
)

// Lists are paged by keyset: a page ends with an opaque cursor naming its
// last item, and the next page starts after it. Cursors are base64url of a
// kind byte and the key, so one list's cursor is refused by another:
//
//	tasks:        't' + task uuid (version 7: newest first is uuid order)
//	templates:    'm' + template id (8 bytes, big endian)
//	dead letters: 'd' + failure time (unix µs, 8 bytes) + step uuid

// MaxPageSize is the largest page a list returns.
const MaxPageSize = 500

func encodeCursor(kind byte, key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, key...))
}

func decodeCursor(kind byte, c string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != size+1 || b[0] != kind {
		return nil, invalid("invalid cursor", fieldError("query.cursor", "not a cursor of this list: pass next_cursor of the previous page unchanged"))
	}
	return b[1:], nil
}

func encodeTaskCursor(id uuid.UUID) string { return encodeCursor('t', id[:]) }

func decodeTaskCursor(c string) (uuid.UUID, error) {
	b, err := decodeCursor('t', c, 16)
	if err != nil {
		return uuid.Nil, err
	}
	return uuid.UUID(b), nil
}

func encodeIDCursor(id int64) string {
	return encodeCursor('m', binary.BigEndian.AppendUint64(nil, uint64(id)))
}

func decodeIDCursor(c string) (int64, error) {
	b, err := decodeCursor('m', c, 8)
	if err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

func encodeDeadLetterCursor(c runner.DeadLetterCursor) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.FailedAt.UnixMicro()))
	return encodeCursor('d', append(b, c.StepUUID[:]...))
}

func decodeDeadLetterCursor(c string) (*runner.DeadLetterCursor, error) {
	b, err := decodeCursor('d', c, 24)
	if err != nil {
		return nil, err
	}
	return &runner.DeadLetterCursor{
		FailedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))),
		StepUUID: uuid.UUID(b[8:]),
	}, nil
}

package openapi

import (
	"reflect"
	"strconv"
	"testing"
)

// TestMirrorDefaults: proto3 cannot tell an unset number from 0, so the
// mirror applies the REST defaults itself ([pageSizeDefault],
// [redriveLimitDefault]); this keeps them equal to the default tags huma
// applies over REST.
func TestMirrorDefaults(t *testing.T) {
	for _, c := range []struct {
		typ   any
		field string
		want  int
	}{
		{listTemplatesInput{}, "Limit", pageSizeDefault},
		{listTasksInput{}, "Limit", pageSizeDefault},
		{listDeadLettersInput{}, "Limit", pageSizeDefault},
		{RedriveRequest{}, "Limit", redriveLimitDefault},
	} {
		f, ok := reflect.TypeOf(c.typ).FieldByName(c.field)
		if !ok {
			t.Fatalf("%T has no field %s", c.typ, c.field)
		}
		if got := f.Tag.Get("default"); got != strconv.Itoa(c.want) {
			t.Errorf("%T.%s default = %q, the mirror's is %d", c.typ, c.field, got, c.want)
		}
	}
}

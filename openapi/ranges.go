package openapi

import (
	"math"
	"regexp"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

// huma words a range problem with the bound as a float ("expected number <=
// 2.147483647e+09"); rangeMessage says it with the integer: "must be at most
// 2147483647". Other messages are returned unchanged.
func rangeMessage(msg string) string {
	m := rangeProblem.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	f, err := strconv.ParseFloat(m[2], 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return msg
	}
	bound := strconv.FormatInt(int64(f), 10)
	switch m[1] {
	case ">=":
		return "must be at least " + bound
	case "<=":
		return "must be at most " + bound
	case ">":
		return "must be more than " + bound
	}
	return "must be less than " + bound
}

var rangeProblem = regexp.MustCompile(`^expected number (>=|<=|>|<) (\S+)$`)

// rangeMessages rewrites the range problems of huma's validation (see
// [rangeMessage]); it is a response transformer.
func rangeMessages(_ huma.Context, _ string, v any) (any, error) {
	if em, ok := v.(*huma.ErrorModel); ok {
		rewordRanges(em.Errors)
	}
	return v, nil
}

func rewordRanges(details []*huma.ErrorDetail) {
	for _, d := range details {
		if d != nil {
			d.Message = rangeMessage(d.Message)
		}
	}
}

package callout

import (
	"fmt"
	"net/http"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// RequestSigner signs the HTTP callouts to one endpoint the Standard
// Webhooks way (the handler contract, contracts/README.md), with [webhook.Signer]. Build one per endpoint
// when it is registered, not per call. A nil *RequestSigner signs nothing,
// so an endpoint without a secret needs no special case. It is safe for
// concurrent use.
type RequestSigner struct {
	s *webhook.Signer
}

// NewRequestSigner returns a signer for an endpoint's secrets, newest first
// (during a rotation: the new secret, then the old one; every request then
// carries both signatures). Empty strings are skipped, so an unset secret
// can be passed as is; with no secret left it returns nil and no error. A
// malformed secret fails with an error wrapping [webhook.ErrInvalidSecret]
// that does not quote the secret.
func NewRequestSigner(secrets []string) (*RequestSigner, error) {
	var set []string
	for _, s := range secrets {
		if s != "" {
			set = append(set, s)
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	s, err := webhook.NewSigner(set...)
	if err != nil {
		return nil, fmt.Errorf("callout: endpoint signing secret: %w", err)
	}
	return &RequestSigner{s: s}, nil
}

// Sign sets webhook-id, webhook-timestamp and webhook-signature on h for a
// request carrying exactly body. id is the step envelope's event_id (for a
// batched call, an id unique to that call); ts is when the request is sent,
// so sign each attempt anew. A nil signer leaves h alone.
func (r *RequestSigner) Sign(h http.Header, id string, ts time.Time, body []byte) {
	if r == nil {
		return
	}
	r.s.SetHeaders(h, id, ts, body)
}

// SignHeaders is the one-shot form of [NewRequestSigner] and
// [RequestSigner.Sign]: it signs h with secrets (newest first), or leaves it
// alone when there are none. Invokers that call an endpoint often should
// keep a [RequestSigner] instead of decoding the secrets on every call.
func SignHeaders(h http.Header, secrets []string, id string, ts time.Time, body []byte) error {
	s, err := NewRequestSigner(secrets)
	if err != nil {
		return err
	}
	s.Sign(h, id, ts, body)
	return nil
}

package app

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
)

// authConfig maps worker.web.auth to the API's settings, reading the JWT key
// files; every unreadable or bad file is reported with its key and path.
func authConfig(c config.Auth) (openapi.AuthConfig, error) {
	out := openapi.AuthConfig{
		Enabled: c.Enabled, PublicHealth: c.PublicHealth, PublicMetrics: c.PublicMetrics,
		JWT: openapi.JWTConfig{
			Enabled: c.JWT.Enabled, Issuer: c.JWT.Issuer, Audience: c.JWT.Audience,
			HS256Secret: c.JWT.HS256Secret, ScopeClaim: c.JWT.ScopeClaim,
		},
	}
	for _, k := range c.APIKeys {
		out.APIKeys = append(out.APIKeys, openapi.APIKey{Name: k.Name, Hash: k.Hash, Scope: openapi.Scope(k.Scope)})
	}
	if !c.Enabled || !c.JWT.Enabled {
		return out, nil
	}
	var errs []error
	for i, f := range c.JWT.PublicKeyFiles {
		key := fmt.Sprintf("worker.web.auth.jwt.public_key_files[%d]", i)
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		if _, err := openapi.ParsePublicKeysPEM(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", key, f, err))
			continue
		}
		out.JWT.PublicKeysPEM = append(out.JWT.PublicKeysPEM, b)
	}
	return out, errors.Join(errs...)
}

// newAuthenticator builds the API's authenticator from the configuration.
func newAuthenticator(cfg config.Config) (*openapi.Authenticator, error) {
	ac, err := authConfig(cfg.Worker.Web.Auth)
	if err != nil {
		return nil, err
	}
	auth, err := openapi.NewAuthenticator(ac)
	if err != nil {
		return nil, fmt.Errorf("worker.web.auth: %s", strings.TrimPrefix(err.Error(), "openapi: auth: "))
	}
	return auth, nil
}

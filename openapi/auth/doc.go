// Package auth authenticates and authorises the management API's requests,
// REST and Connect/gRPC alike: an [Authenticator] built by [New] from a
// [Config] serves as HTTP middleware ([Authenticator.Middleware]) and as a
// Connect interceptor ([Authenticator.ConnectInterceptor]), and puts the
// caller's [Principal] in the request's context ([PrincipalFrom]).
//
// Credentials:
//   - API keys, configured only as "sha256:<hex>" hashes and sent as
//     "Authorization: Bearer <key>" or "X-API-Key: <key>". A presented key
//     is hashed and compared with every configured hash in constant time.
//   - JWT bearer tokens ("Authorization: Bearer <jwt>"), HS256, RS256 or
//     ES256, with exp required, nbf and iat checked, iss equal to the
//     configured issuer and aud (a string or an array) containing the
//     configured audience. A bearer value is first tried as an API key,
//     then, if it has a JWT's three-part shape, as a token.
//
// Scopes are exactly "read" and "admin" (no prefixes such as
// "tasker:admin"). A JWT's scope claim is a space-separated string or an
// array of strings; "admin" anywhere wins, else "read", else the token
// grants nothing and is answered 403. "read" allows REST GET and HEAD and
// read-only procedures; "admin" allows everything.
//
// Public REST paths (no credential needed, a presented one is ignored):
// /health and /health/* when PublicHealth, /metrics when PublicMetrics,
// and always the API description: /openapi.json, /openapi.yaml,
// /openapi-3.0.json, /openapi-3.0.yaml, /schemas/*, /docs and /docs/*
// (the spec documents the API and holds no secret). Every other path,
// /v1/* and unknown ones alike, needs a credential: a request without one
// learns nothing, not even whether the path exists.
//
// Procedures (Connect, gRPC, gRPC-Web): grpc.health.v1.Health/* is public
// when PublicHealth (otherwise any valid credential may call it), server
// reflection (grpc.reflection.v1 and v1alpha) is always public. A
// procedure is read-only when its method name starts with Get, List or
// Watch followed by an upper-case letter or nothing (GetTask, ListTasks,
// WatchTask; not Listen), or when the handler declares it free of side
// effects (idempotency_level = NO_SIDE_EFFECTS). Every other procedure
// needs admin.
//
// JWTs (RFC 7519) signed with JWS compact serialisation (RFC 7515) are
// verified with the standard library only. Accepted algorithms (RFC 7518):
// HS256 against the configured shared secret, RS256 against the configured
// RSA public keys, ES256 against the configured P-256 public keys. The
// token's "alg" picks which kind of key verifies it and never the other way
// round: an HS256 token is never checked against a public key used as an
// HMAC secret, and "none" is refused.
package auth

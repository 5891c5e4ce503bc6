// Package polyglot holds no code: its tests run the example handler services
// written in other languages (examples/handlers/python, ruby and typescript)
// as child processes and check them against the handler contract with the
// conformance suite (callout/conformance), unsigned and signed, batched
// included; they also run each example's own tests (the shared Standard
// Webhooks vectors) and check the order-fulfilment steps, batches, request
// limits and graceful shutdown the same way for every language. The
// conformance runs include the dynamic cases (the approval's decision, the
// batch ETL's split and its yielding worker). The four handlers of README.md's
// "Write a handler in 5 minutes" run through the suite too, as printed there.
//
// The runtimes come from .ci/ensure-runtimes (python3; ruby with webrick;
// node and npm), which the tests call when one is missing: as root on Debian
// it installs them with apt-get. The TypeScript example's compiler is
// installed with `npm ci` from its package-lock.json into
// examples/handlers/typescript/node_modules (kept between runs, reinstalled
// when the lock file changes) and compiled into its dist/. A runtime that
// cannot be installed skips that language's tests with a message saying
// what to install.
package polyglot

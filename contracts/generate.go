package contracts

// Regenerates contracts/gen (Go code of the handler contract) and its checksum
// manifest; see contracts/README.md.
//go:generate bash ../.ci/generate-contracts

package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParsePublicKeysPEM parses the public keys in one PEM document, as read
// from one file of worker.web.auth.jwt.public_key_files. Accepted blocks:
// "PUBLIC KEY" (PKIX: RSA or ECDSA P-256), "RSA PUBLIC KEY" (PKCS #1) and
// "CERTIFICATE" (its subject public key). Private keys are refused: the
// server only needs the public half. A document without any key is an error.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%q): %w", n, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, errors.New("empty: want a PEM public key")
		}
		return nil, errors.New("no PEM block found: want a PEM \"PUBLIC KEY\" (RSA or ECDSA P-256)")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	var (
		key any
		err error
	)
	switch b.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, errors.New("is a private key: configure only the public key (openssl pkey -pubout)")
	default:
		return nil, errors.New(`unsupported PEM type: want "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"`)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSAKeyBits {
			return nil, fmt.Errorf("RSA key of %d bits is too short: want at least %d", bits, MinRSAKeyBits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on curve %s is not supported: ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%T keys are not supported: want RSA (RS256) or ECDSA P-256 (ES256)", key)
}

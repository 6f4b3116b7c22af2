package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"go.mau.fi/libsignal/ecc"
	"google.golang.org/protobuf/proto"

	"go.mau.fi/whatsmeow/proto/waCert"
	"go.mau.fi/whatsmeow/util/keys"
)

// serverKeys holds everything a client has to trust plus the keys that
// prove the server's identity inside the noise handshake.
type serverKeys struct {
	caCertPEM []byte
	caKeyPEM  []byte
	tlsCert   tls.Certificate
	noiseRoot *keys.KeyPair
	static    *keys.KeyPair
	certChain []byte
}

// newCA creates a self-signed certificate authority.
func newCA() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "blacksky WhatsApp sandbox CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create ca cert: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal ca key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// leafCert issues the TLS certificate for web.whatsapp.com under the CA.
func leafCert(caCertPEM, caKeyPEM []byte) (tls.Certificate, error) {
	caBlock, _ := pem.Decode(caCertPEM)
	keyBlock, _ := pem.Decode(caKeyPEM)
	if caBlock == nil || keyBlock == nil {
		return tls.Certificate{}, fmt.Errorf("issue tls cert: bad CA PEM")
	}
	caCert, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue tls cert: parse ca: %w", err)
	}
	caKey, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue tls cert: parse ca key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue tls cert: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "web.whatsapp.com"},
		DNSNames:     []string{"web.whatsapp.com", "*.whatsapp.com", "*.whatsapp.net", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue tls cert: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// noiseCertChain builds the root -> intermediate -> leaf chain that
// whatsmeow verifies against WACertPubKey.
func noiseCertChain(root, static *keys.KeyPair) ([]byte, error) {
	intermediate := keys.NewKeyPair()
	now := time.Now()
	const serial = 7
	interDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial:       proto.Uint32(serial),
		IssuerSerial: proto.Uint32(0),
		Key:          intermediate.Pub[:],
		NotBefore:    proto.Uint64(uint64(now.Add(-time.Hour).Unix())),
		NotAfter:     proto.Uint64(uint64(now.AddDate(1, 0, 0).Unix())),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal intermediate cert: %w", err)
	}
	leafDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial:       proto.Uint32(serial + 1),
		IssuerSerial: proto.Uint32(serial),
		Key:          static.Pub[:],
		NotBefore:    proto.Uint64(uint64(now.Add(-time.Hour).Unix())),
		NotAfter:     proto.Uint64(uint64(now.AddDate(1, 0, 0).Unix())),
	})
	if err != nil {
		return nil, fmt.Errorf("marshal leaf cert: %w", err)
	}
	interSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*root.Priv), interDetails)
	leafSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*intermediate.Priv), leafDetails)
	chain, err := proto.Marshal(&waCert.CertChain{
		Intermediate: &waCert.CertChain_NoiseCertificate{Details: interDetails, Signature: interSig[:]},
		Leaf:         &waCert.CertChain_NoiseCertificate{Details: leafDetails, Signature: leafSig[:]},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal cert chain: %w", err)
	}
	return chain, nil
}

func keyPairFromPriv(priv []byte) (*keys.KeyPair, error) {
	if len(priv) != 32 {
		return nil, fmt.Errorf("curve25519 private key: got %d bytes, want 32", len(priv))
	}
	return keys.NewKeyPairFromPrivateKey([32]byte(priv)), nil
}

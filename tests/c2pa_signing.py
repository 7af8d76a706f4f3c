"""Signing a C2PA manifest in tests with ``c2pa-python``'s Builder: by default with the test certificate the
bindings' own tests and examples use (``tests/fixtures/c2pa``, see its SOURCE.md); ``generated=True`` signs with a
throw-away ES256 test CA made at run time with ``cryptography`` instead."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


FIXTURES = Path(__file__).parent / "fixtures" / "c2pa"


def make_signer(generated: bool = False):
    """A c2pa Signer: the bindings' ES256 test credentials, or (``generated``) a fresh test CA and an end-entity
    certificate it issued."""
    import c2pa

    if not generated:
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            alg=b"es256", sign_cert=(FIXTURES / "es256_certs.pem").read_bytes(),
            private_key=(FIXTURES / "es256_private.key").read_bytes(), ta_url=None))
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakescope tests")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, issuer, key, ca: bool):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(usage(not ca), critical=True))
        if not ca:  # C2PA's signer profile: a document-signing kind of certificate, issued by a CA
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                critical=False))
        return b.sign(ca_key, hashes.SHA256())

    ca = cert(name("fakescope test root"), name("fakescope test root"), ca_key, True)
    ee = cert(name("fakescope test signer"), ca.subject, ee_key, False)
    chain = ee.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key = ee_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=key, ta_url=None))


def sign_image(src: Path, dest: Path, source_type: str = TRAINED, generator: str = "fakescope-test",
               generated: bool = False) -> Path:
    """``src`` (a JPEG or PNG) with a signed manifest whose action ``c2pa.created`` has ``source_type``."""
    import c2pa

    manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}], "title": src.name,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": source_type}]}}]}
    mime = "image/png" if src.suffix.lower() == ".png" else "image/jpeg"
    with open(src, "rb") as s, open(dest, "w+b") as d:
        c2pa.Builder(json.dumps(manifest)).sign(make_signer(generated), mime, s, d)
    return dest

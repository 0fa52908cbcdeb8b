//! Just enough PEM and DER to tell which kind of public key a PEM holds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::keys::{KeyError, KeyType, err};

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

pub(crate) fn pem_body(text: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| err("no PEM block"))?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----").ok_or_else(|| err("bad PEM header"))?;
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end
        .find("-----END ")
        .ok_or_else(|| err("no PEM footer"))?;
    let b64: String = body_and_end[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD.decode(b64).map_err(|_| err("bad PEM base64"))?;
    Ok((label, der))
}

/// Reads a DER tag and length; returns the content and what follows it.
fn der_next(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The key type of a SubjectPublicKeyInfo: `SEQ { SEQ { OID alg, params }, BIT STRING }`.
pub(crate) fn spki_type(der: &[u8]) -> Result<KeyType, KeyError> {
    let bad = || err("not a SubjectPublicKeyInfo");
    let (0x30, spki, _) = der_next(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x30, alg_id, _) = der_next(spki).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x06, oid, params) = der_next(alg_id).ok_or_else(bad)? else {
        return Err(bad());
    };
    match oid {
        OID_RSA => Ok(KeyType::Rsa),
        OID_ED25519 => Ok(KeyType::Ed25519),
        OID_EC => match der_next(params) {
            Some((0x06, OID_P256, _)) => Ok(KeyType::EcP256),
            Some((0x06, OID_P384, _)) => Ok(KeyType::EcP384),
            _ => Err(err("unsupported EC curve")),
        },
        _ => Err(err("unsupported key algorithm")),
    }
}

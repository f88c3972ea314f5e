//! The few X.509 facts tracehop reads that rustls does not expose: a
//! certificate's expiry (`notAfter`) and its subject's common name.
//!
//! A minimal DER walk (ITU-T X.690 §8.1: tag, length, contents) over the
//! RFC 5280 §4.1 structure. It returns `None` on anything unexpected rather
//! than failing: these facts only feed a warning and a span tag, never a
//! trust decision (rustls and webpki make those).

use std::time::{Duration, SystemTime};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` in TBSCertificate.
const VERSION_TAG: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3 (RFC 5280 Appendix A.1).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Splits one TLV off `input`: (tag, contents, rest). Definite lengths only,
/// as DER requires (X.690 §10.1).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, rest)
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The contents of an expected TLV, and what follows it.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, contents, rest) = tlv(input)?;
    (tag == want).then_some((contents, rest))
}

/// The contents of TBSCertificate's `validity` SEQUENCE.
fn validity(cert_der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = expect(cert_der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION_TAG) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, then validity (RFC 5280 §4.1).
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    Some(expect(rest, SEQUENCE)?.0)
}

/// The certificate's `notAfter`.
pub fn not_after(cert_der: &[u8]) -> Option<SystemTime> {
    let (_, _, rest) = tlv(validity(cert_der)?)?;
    let (tag, time, _) = tlv(rest)?;
    parse_time(tag, std::str::from_utf8(time).ok()?)
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`, the only
/// forms RFC 5280 §4.1.2.5 allows.
fn parse_time(tag: u8, text: &str) -> Option<SystemTime> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first common name in a subject `Name`, given its contents (the
/// SEQUENCE OF RelativeDistinguishedName without the outer tag, as webpki
/// returns it).
pub fn common_name(subject: &[u8]) -> Option<String> {
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, SET)?;
        rdns = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(attributes, SEQUENCE)?;
            attributes = rest;
            let (oid, value) = expect(attribute, OID)?;
            if oid == COMMON_NAME {
                // UTF8String, PrintableString, IA5String...: all text here.
                let (_, text, _) = tlv(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn times_follow_rfc_5280() {
        let cases = [
            (UTC_TIME, "700101000000Z", at(0)),
            (UTC_TIME, "491231235959Z", at(2_524_607_999)),
            (UTC_TIME, "500101000000Z", None),
            (GENERALIZED_TIME, "20240229120000Z", at(1_709_208_000)),
            (GENERALIZED_TIME, "99991231235959Z", at(253_402_300_799)),
            (UTC_TIME, "240229120000", None),
            (UTC_TIME, "2402291200Z", None),
            (GENERALIZED_TIME, "20241301000000Z", None),
        ];
        for (tag, text, want) in cases {
            assert_eq!(parse_time(tag, text), want, "{text}");
        }
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            tlv(&[0x30, 0x02, 1, 2, 3]),
            Some((0x30, &[1, 2][..], &[3][..]))
        );
        assert_eq!(tlv(&[0x30, 0x81, 0x01, 9]), Some((0x30, &[9][..], &[][..])));
        assert_eq!(tlv(&[0x30, 0x05, 1]), None);
        assert_eq!(tlv(&[0x30, 0x80]), None, "indefinite length is not DER");
        assert_eq!(tlv(&[0x30]), None);
    }

    #[test]
    fn common_name_is_found_among_attributes() {
        // SET { SEQ { O = "acme" } }, SET { SEQ { CN = "web" } }
        let subject = [
            0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x04, b'a', b'c', b'm',
            b'e', 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, b'w', b'e',
            b'b',
        ];
        assert_eq!(common_name(&subject).as_deref(), Some("web"));
        assert_eq!(common_name(&subject[..15]), None);
        assert_eq!(common_name(&[0x31, 0x09]), None);
    }
}

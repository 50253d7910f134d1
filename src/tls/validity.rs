//! When a certificate is valid: `notBefore` and `notAfter` read from its DER.
//!
//! rustls checks the validity of the certificates a peer presents, never of the
//! server's own, so an expired certificate would start and then fail every
//! client's handshake. Reading two fields takes a short walk through the DER
//! (RFC 5280 §4.1) rather than an X.509 crate and its parser stack.

use std::time::{Duration, SystemTime};

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A certificate's validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// The validity of a DER certificate; `None` if it is not one this walk can read.
pub fn validity(cert: &[u8]) -> Option<Validity> {
    let (certificate, _) = element(cert, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = any(tbs)?.2;
    }
    // serialNumber, signature, issuer: skipped whatever they hold.
    for _ in 0..3 {
        tbs = any(tbs)?.2;
    }
    let (period, _) = element(tbs, SEQUENCE)?;
    let (not_before, rest) = time(period)?;
    let (not_after, _) = time(rest)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// The next element of any tag: (tag, contents, what follows).
fn any(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = match first {
        0..=0x7F => (usize::from(first), rest),
        // Long form: the low bits count the length's bytes; certificates need <= 4.
        0x81..=0x84 => {
            let count = usize::from(first & 0x7F);
            let bytes = rest.get(..count)?;
            let length = bytes
                .iter()
                .fold(0usize, |sum, &byte| sum << 8 | usize::from(byte));
            (length, &rest[count..])
        }
        _ => return None,
    };
    let contents = rest.get(..length)?;
    Some((tag, contents, &rest[length..]))
}

/// The next element, which must have `tag`: (contents, what follows).
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = any(der)?;
    (found == tag).then_some((contents, rest))
}

/// A UTCTime or GeneralizedTime, as RFC 5280 §4.1.2.5 restricts them (UTC, seconds).
fn time(der: &[u8]) -> Option<(SystemTime, &[u8])> {
    let (tag, contents, rest) = any(der)?;
    let text = std::str::from_utf8(contents).ok()?.strip_suffix('Z')?;
    let (year, rest_of_time) = match tag {
        UTC_TIME if text.len() == 12 => {
            let short: u64 = text[..2].parse().ok()?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                &text[2..],
            )
        }
        GENERALIZED_TIME if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |at: usize| rest_of_time.get(at..at + 2)?.parse::<u64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24;
    if !valid || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((SystemTime::UNIX_EPOCH + Duration::from_secs(seconds), rest))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`, for years from 1970 on).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn dates_count_days_from_the_epoch() {
        for (date, days) in [
            ((1970, 1, 1), 0),
            ((1970, 3, 1), 59),
            ((2000, 2, 29), 11_016),
            ((2000, 3, 1), 11_017),
            ((2038, 1, 19), 24_855),
            ((2100, 3, 1), 47_541),
        ] {
            assert_eq!(days_since_epoch(date.0, date.1, date.2), days, "{date:?}");
        }
    }

    #[test]
    fn reads_both_time_forms() {
        let utc = b"\x17\x0d491231235959Z";
        assert_eq!(time(utc).unwrap().0, at(2_524_607_999));
        let utc_1950 = b"\x17\x0d500101000000Z";
        assert_eq!(time(utc_1950), None, "1950 is before the epoch");
        let generalized = b"\x18\x0f20500101000000Z";
        assert_eq!(time(generalized).unwrap().0, at(2_524_608_000));
    }

    #[test]
    fn refuses_what_rfc_5280_rules_out() {
        for bad in [
            &b"\x17\x0d491231235959+"[..],
            b"\x17\x0b4912312359Z",
            b"\x18\x0d491231235959Z",
            b"\x17\x0d491331235959Z",
            b"\x17\x0d49123123595"[..].as_ref(),
            b"",
        ] {
            assert_eq!(time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn long_form_lengths() {
        let mut der = vec![0x04, 0x82, 0x01, 0x00];
        der.extend([7; 256]);
        der.push(0x05);
        let (tag, contents, rest) = any(&der).unwrap();
        assert_eq!((tag, contents.len(), rest), (0x04, 256, &[0x05][..]));
        assert_eq!(any(&[0x04, 0x82, 0x01]), None, "truncated length");
        assert_eq!(any(&[0x04, 0x05, 1, 2]), None, "truncated contents");
    }

    #[test]
    fn not_a_certificate() {
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(validity(b"garbage"), None);
    }
}

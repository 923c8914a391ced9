//! Wire conversions every service needs, written once: timestamps (nanoseconds kept)
//! and microsecond counts as `google.protobuf.Timestamp`.

use prost_types::Timestamp;
use time::OffsetDateTime;

/// `t` as a protobuf timestamp, to the nanosecond.
pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

/// Microseconds since the Unix epoch (as stored in JSON lineage) as a timestamp;
/// negative counts lie before 1970.
pub fn timestamp_from_micros(micros: i64) -> Timestamp {
    Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1000) as i32 }
}

/// A protobuf timestamp back as a time, if it is one (nanos within 0..1e9).
pub fn time_of(t: &Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    (0..1_000_000_000).contains(&t.nanos).then_some(())?;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_nanoseconds_and_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_560_000_123_456_789).expect("a time");
        let wire = timestamp(t);
        assert_eq!((wire.seconds, wire.nanos), (1_764_560_000, 123_456_789));
        assert_eq!(time_of(&wire), Some(t));
        assert_eq!(time_of(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(time_of(&Timestamp { seconds: 0, nanos: 1_000_000_000 }), None);
        assert_eq!(time_of(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    #[test]
    fn microsecond_counts_become_timestamps_on_both_sides_of_the_epoch() {
        let cases =
            [(0, (0, 0)), (1_500_000, (1, 500_000_000)), (-1, (-1, 999_999_000)), (-1_500_000, (-2, 500_000_000))];
        for (micros, (seconds, nanos)) in cases {
            let t = timestamp_from_micros(micros);
            assert_eq!((t.seconds, t.nanos), (seconds, nanos), "{micros}");
        }
    }
}

//! Calendar dates from Unix time, without a time zone database.

/// A date for people: days since the epoch turned into YYYY-MM-DD (UTC), no time zone database.
pub fn date(unix: u64) -> String {
    let (y, m, d) = edge_mfa_proto::civil::civil_from_days((unix / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000), "2023-11-14");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}

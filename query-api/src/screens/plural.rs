//! Counts in words: "1 entry", "2 entries", "0 orders". Every count a screen shows goes
//! through [`count`], so none says "1 entries".

/// `n` followed by `one` when `n` is 1 and by `many` otherwise.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1_u32, "entry", "entries"), "1 entry");
        assert_eq!(count(0_u32, "entry", "entries"), "0 entries");
        assert_eq!(count(2_u64, "event", "events"), "2 events");
    }
}

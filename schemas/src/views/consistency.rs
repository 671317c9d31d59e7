use std::fmt;

use crate::values::OrderId;

/// Returned by every state-changing command: the order and the stream version the command
/// produced. A query given the token waits (bounded) until its view has reached that version.
/// Text form: `<order uuid>.<version>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsistencyToken {
    pub order_id: OrderId,
    pub version: i64,
}

impl ConsistencyToken {
    pub fn parse(raw: &str) -> Option<Self> {
        let (id, version) = raw.rsplit_once('.')?;
        let version: i64 = version.parse().ok().filter(|v| *v >= 1)?;
        Some(Self {
            order_id: OrderId::parse(id).ok()?,
            version,
        })
    }
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.order_id, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_rejects_garbage() {
        let token = ConsistencyToken {
            order_id: OrderId::new_v7(),
            version: 3,
        };
        assert_eq!(ConsistencyToken::parse(&token.to_string()), Some(token));
        assert_eq!(ConsistencyToken::parse("nope"), None);
        assert_eq!(
            ConsistencyToken::parse(&format!("{}.0", token.order_id)),
            None
        );
    }
}

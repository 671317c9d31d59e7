//! Partition leases: how several instances of one view share its partitions
//! (`<root>.v1.<partition>.…`) with one owner per partition at a time.
//!
//! Each instance renews a membership row and its leases every heartbeat, in one SERIALIZABLE
//! transaction on the event store's database (tables `projector_members` and
//! `projector_leases`, migration 0008), timed by the database's clock so the instances' clocks
//! do not matter. The live members, sorted, split the partitions evenly ([`plan`]); an instance
//! renews the leases of its share, claims free or expired partitions up to its share, and gives
//! back what is above it (a newcomer joined) once it has stopped consuming them. A killed
//! instance stops renewing: its membership and leases expire after the lease time and the
//! survivors' next heartbeats take its partitions.
//!
//! Why the database and not Redis: the event store is the one store every view already needs
//! (gap filling reads it), it is durable and serializable, while a view's Redis may lose its
//! data (it runs without persistence) and the search and analytics views have no Redis at all.
//! No fencing token is needed for correctness: two owners of one partition for a moment (a
//! paused instance whose lease ran out) cannot apply an event twice, since every view write is
//! a compare-and-set on the order's version; the lease keeps the work shared and in order.

use std::time::Duration;

use sqlx::PgPool;
use waybill_write_side::event_store::retry;

/// What an instance does with the partitions after one heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Its share that it holds already: renewed.
    pub keep: Vec<u32>,
    /// Free or expired partitions it takes to fill its share.
    pub claim: Vec<u32>,
    /// Leases it holds above its share: stop consuming them, then [`Leases::release`].
    pub give_back: Vec<u32>,
}

impl Plan {
    /// The partitions this instance consumes after the heartbeat.
    pub fn owned(&self) -> Vec<u32> {
        let mut owned: Vec<u32> = self.keep.iter().chain(&self.claim).copied().collect();
        owned.sort_unstable();
        owned
    }
}

/// One lease as read at a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub owner: String,
    /// Not expired at the database's `now()`.
    pub live: bool,
}

/// How many of `partitions` the member at `rank` of `members` should own: an even split, the
/// first `partitions % members` members taking one more.
pub fn share(partitions: u32, members: usize, rank: usize) -> usize {
    let members = members.max(1);
    let partitions = partitions as usize;
    partitions / members + usize::from(rank < partitions % members)
}

/// The pure decision of a heartbeat for `me`, given the live members (`me` among them) and
/// the leases as they are.
pub fn plan(partitions: u32, me: &str, members: &[String], leases: &[Lease]) -> Plan {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    sorted.dedup();
    let rank = sorted
        .iter()
        .position(|m| m.as_str() == me)
        .unwrap_or(sorted.len());
    let members = if rank == sorted.len() {
        sorted.len() + 1
    } else {
        sorted.len()
    };
    let quota = share(partitions, members, rank);

    let mut mine: Vec<u32> = leases
        .iter()
        .filter(|l| l.owner == me && l.partition < partitions)
        .map(|l| l.partition)
        .collect();
    mine.sort_unstable();
    let give_back = mine.split_off(quota.min(mine.len()));
    let taken: std::collections::HashSet<u32> = leases
        .iter()
        .filter(|l| l.live || l.owner == me)
        .map(|l| l.partition)
        .collect();
    let claim = (0..partitions)
        .filter(|p| !taken.contains(p))
        .take(quota.saturating_sub(mine.len()))
        .collect();
    Plan {
        keep: mine,
        claim,
        give_back,
    }
}

/// One instance's leases on one view's partitions.
#[derive(Debug, Clone)]
pub struct Leases {
    pool: PgPool,
    view: String,
    instance: String,
    partitions: u32,
    ttl: Duration,
}

impl Leases {
    pub fn new(
        pool: PgPool,
        view: impl Into<String>,
        instance: impl Into<String>,
        partitions: u32,
        ttl: Duration,
    ) -> Self {
        Self {
            pool,
            view: view.into(),
            instance: instance.into(),
            partitions,
            ttl,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn ttl_ms(&self) -> f64 {
        self.ttl.as_secs_f64() * 1000.0
    }

    /// Renews membership and this instance's share, claims free partitions up to it; returns
    /// the plan carried out (its `give_back` leases are left to expire unless released).
    pub async fn heartbeat(&self) -> Result<Plan, sqlx::Error> {
        retry::serializable(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            sqlx::query(
                "INSERT INTO projector_members (view, instance, expires_at) \
                 VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (view, instance) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(&self.view)
            .bind(&self.instance)
            .bind(self.ttl_ms())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM projector_members WHERE view = $1 AND expires_at < now()")
                .bind(&self.view)
                .execute(&mut *tx)
                .await?;
            let members: Vec<String> = sqlx::query_scalar(
                "SELECT instance FROM projector_members WHERE view = $1 ORDER BY instance",
            )
            .bind(&self.view)
            .fetch_all(&mut *tx)
            .await?;
            let leases: Vec<(i32, String, bool)> = sqlx::query_as(
                "SELECT partition, owner, expires_at > now() FROM projector_leases \
                 WHERE view = $1",
            )
            .bind(&self.view)
            .fetch_all(&mut *tx)
            .await?;
            let leases: Vec<Lease> = leases
                .into_iter()
                .filter_map(|(partition, owner, live)| {
                    Some(Lease {
                        partition: u32::try_from(partition).ok()?,
                        owner,
                        live,
                    })
                })
                .collect();
            let plan = plan(self.partitions, &self.instance, &members, &leases);
            let keep: Vec<i32> = plan.keep.iter().map(|p| *p as i32).collect();
            sqlx::query(
                "UPDATE projector_leases SET expires_at = now() + $3 * interval '1 millisecond' \
                 WHERE view = $1 AND owner = $2 AND partition = ANY($4)",
            )
            .bind(&self.view)
            .bind(&self.instance)
            .bind(self.ttl_ms())
            .bind(&keep)
            .execute(&mut *tx)
            .await?;
            let mut plan = plan;
            let claim: Vec<i32> = plan.claim.iter().map(|p| *p as i32).collect();
            // The guard repeats the plan's condition inside the statement: a lease another
            // instance renewed or took since it was read is not taken (SERIALIZABLE would
            // also refuse it); only what the statement returns is owned.
            let claimed: Vec<i32> = sqlx::query_scalar(
                "INSERT INTO projector_leases (view, partition, owner, epoch, expires_at) \
                 SELECT $1, p, $2, 1, now() + $3 * interval '1 millisecond' FROM UNNEST($4::int[]) AS p \
                 ON CONFLICT (view, partition) DO UPDATE \
                 SET owner = excluded.owner, epoch = projector_leases.epoch + 1, \
                     expires_at = excluded.expires_at \
                 WHERE projector_leases.expires_at < now() \
                    OR projector_leases.owner = excluded.owner \
                 RETURNING partition",
            )
            .bind(&self.view)
            .bind(&self.instance)
            .bind(self.ttl_ms())
            .bind(&claim)
            .fetch_all(&mut *tx)
            .await?;
            plan.claim
                .retain(|p| claimed.iter().any(|c| i64::from(*c) == i64::from(*p)));
            tx.commit().await?;
            Ok(plan)
        })
        .await
    }

    /// Gives `partitions` back at once (their consumers have stopped), for the next
    /// heartbeat of another instance to claim.
    pub async fn release(&self, partitions: &[u32]) -> Result<(), sqlx::Error> {
        let partitions: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
        retry::serializable(|| {
            sqlx::query(
                "DELETE FROM projector_leases WHERE view = $1 AND owner = $2 \
                 AND partition = ANY($3)",
            )
            .bind(&self.view)
            .bind(&self.instance)
            .bind(&partitions)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// Leaves the view on a clean stop: every lease and the membership go at once.
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        retry::serializable(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            for table in ["projector_leases", "projector_members"] {
                let column = if table == "projector_leases" {
                    "owner"
                } else {
                    "instance"
                };
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE view = $1 AND {column} = $2"
                ))
                .bind(&self.view)
                .bind(&self.instance)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(partition: u32, owner: &str, live: bool) -> Lease {
        Lease {
            partition,
            owner: owner.to_owned(),
            live,
        }
    }

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn shares_split_every_partition_exactly_once() {
        for partitions in [1, 7, 8, 16] {
            for members in 1..=5 {
                let total: usize = (0..members).map(|r| share(partitions, members, r)).sum();
                assert_eq!(total, partitions as usize, "{partitions} over {members}");
            }
        }
    }

    #[test]
    fn a_lone_instance_claims_every_partition() {
        let plan = plan(8, "a", &members(&["a"]), &[]);
        assert_eq!(plan.owned(), (0..8).collect::<Vec<_>>());
        assert!(plan.give_back.is_empty());
    }

    #[test]
    fn a_newcomer_makes_the_owner_give_back_the_share_above_its_own() {
        let leases: Vec<Lease> = (0..8).map(|p| lease(p, "a", true)).collect();
        let both = members(&["a", "b"]);
        let a = plan(8, "a", &both, &leases);
        assert_eq!(a.keep, vec![0, 1, 2, 3]);
        assert_eq!(a.give_back, vec![4, 5, 6, 7]);
        // Until they are given back, the newcomer finds nothing free...
        assert_eq!(plan(8, "b", &both, &leases).owned(), Vec::<u32>::new());
        // ...and after, it takes them.
        let after: Vec<Lease> = (0..4).map(|p| lease(p, "a", true)).collect();
        assert_eq!(plan(8, "b", &both, &after).claim, vec![4, 5, 6, 7]);
    }

    #[test]
    fn expired_leases_of_a_dead_instance_go_to_the_survivors() {
        let mut leases: Vec<Lease> = (0..3).map(|p| lease(p, "a", true)).collect();
        leases.extend((3..6).map(|p| lease(p, "b", false)));
        leases.extend((6..8).map(|p| lease(p, "c", true)));
        // b is gone from the members; a and c split 8: 4 each.
        // Heartbeats are serialized: a first, then c sees what a took.
        let survivors = members(&["a", "c"]);
        let a = plan(8, "a", &survivors, &leases);
        assert_eq!(a.owned(), vec![0, 1, 2, 3]);
        leases.retain(|l| l.partition != 3);
        leases.push(lease(3, "a", true));
        let c = plan(8, "c", &survivors, &leases);
        assert_eq!(c.owned(), vec![4, 5, 6, 7]);
    }

    #[test]
    fn a_live_lease_of_another_instance_is_never_claimed() {
        let leases = vec![lease(0, "b", true)];
        let plan = plan(2, "a", &members(&["a"]), &leases);
        assert_eq!(plan.claim, vec![1]);
    }

    async fn owned_by(leases: &Leases) -> Vec<u32> {
        leases.heartbeat().await.expect("heartbeat").owned()
    }

    /// The SQL against a real serializable Postgres: a newcomer gets half after the owner
    /// gives it back, and a silent instance's partitions pass to the other after the lease time.
    #[tokio::test]
    async fn leases_rebalance_on_join_and_pass_on_after_expiry() {
        let db = waybill_write_side::testing::TestDatabase::create("leases").await;
        let ttl = Duration::from_millis(400);
        let a = Leases::new(db.pool.clone(), "tracking", "a", 4, ttl);
        let b = Leases::new(db.pool.clone(), "tracking", "b", 4, ttl);
        assert_eq!(owned_by(&a).await, vec![0, 1, 2, 3]);

        // b joins: nothing is free yet; a keeps its share and gives the rest back.
        assert_eq!(owned_by(&b).await, Vec::<u32>::new());
        let plan = a.heartbeat().await.expect("heartbeat");
        assert_eq!(
            (plan.keep.clone(), plan.give_back.clone()),
            (vec![0, 1], vec![2, 3])
        );
        a.release(&plan.give_back).await.expect("release");
        assert_eq!(owned_by(&b).await, vec![2, 3]);

        // a goes silent: once its membership and leases expire, b owns everything.
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        assert_eq!(owned_by(&b).await, vec![0, 1, 2, 3]);
        let epochs: Vec<i64> =
            sqlx::query_scalar("SELECT epoch FROM projector_leases ORDER BY partition")
                .fetch_all(&db.pool)
                .await
                .expect("epochs");
        // 0 and 1 were taken from a's expired leases; 2 and 3 were given back (deleted) and
        // claimed afresh.
        assert_eq!(epochs, vec![2, 2, 1, 1]);

        // A clean stop gives everything back at once.
        b.leave().await.expect("leave");
        assert_eq!(db.count("projector_leases").await, 0);
        db.drop().await;
    }

    #[test]
    fn an_own_expired_lease_is_renewed_rather_than_lost() {
        let leases = vec![lease(0, "a", false), lease(1, "a", true)];
        let plan = plan(2, "a", &members(&["a"]), &leases);
        assert_eq!(plan.keep, vec![0, 1]);
        assert!(plan.claim.is_empty());
    }
}

//! The read side in the demo: the tracking and notifications views rebuilt from the event log
//! into a new generation and switched in order by order while everything keeps serving (the
//! notifications rebuild sends nothing), the search index rebuilt into a new generation the
//! running projector adopts (Tantivy) or behind the alias (OpenSearch API), and the analytics
//! tables rebuilt into a new ClickHouse generation switched in by rename.

use crate::config::Settings;

pub async fn rebuild(settings: &Settings) -> anyhow::Result<()> {
    println!("\nRebuilding views from the event log while the system keeps serving:");
    crate::rebuild::tracking(settings).await?;
    crate::rebuild::notifications(settings).await?;
    crate::rebuild::search(settings).await?;
    crate::rebuild::analytics(settings).await?;
    Ok(())
}

//! The search view (embedded Tantivy, committing on a time policy as deployed) in the
//! compliance suite. Its new generation is a fresh index directory.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;
use waybill_schemas::views::OrderDocument;

use super::{compliance_suite, Subject};
use crate::runtime::ProjectorConfig;
use crate::views::search::{SearchProjection, TantivyIndex};

struct Search {
    index: TantivyIndex,
    dirs: Mutex<Vec<PathBuf>>,
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waybill-compliance-search-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("index dir");
    dir
}

impl Subject for Search {
    type View = SearchProjection<TantivyIndex>;

    async fn open(_config: &ProjectorConfig) -> Self {
        let dir = fresh_dir();
        Self {
            index: TantivyIndex::open_writer(&dir).expect("tantivy index opens"),
            dirs: Mutex::new(vec![dir]),
        }
    }

    fn live(&self) -> Self::View {
        SearchProjection::new(self.index.clone()).with_commit_interval(Duration::from_millis(100))
    }

    async fn green(&self) -> Self::View {
        let dir = fresh_dir();
        let index = TantivyIndex::open_writer(&dir).expect("tantivy index opens");
        self.dirs.lock().expect("lock").push(dir);
        SearchProjection::new(index)
    }

    fn settled(state: OrderDocument) -> OrderDocument {
        state
    }

    async fn cleanup(self) {
        drop(self.index);
        for dir in self.dirs.into_inner().expect("lock") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

compliance_suite!(Search);

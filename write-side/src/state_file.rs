//! A simulator's durable state: one JSON file under a configured directory, replaced atomically
//! (written to `<name>.tmp`, fsynced, renamed over `<name>`, the directory fsynced), so a process
//! killed at any moment leaves either the previous state or the new one, never half of one.
//!
//! The sandboxes save after every change and before they answer or send the webhook it causes,
//! so nothing they told anyone is forgotten by a restart. Saves are grouped: a caller whose
//! change another caller's save already covered returns without writing (a counter of changes
//! saved, read before the snapshot is taken), so under load one write serves many requests.
//! The whole state is written each time, which suits a simulator's size (a few MB after tens of
//! thousands of payments), not a production store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

/// Why the state could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a state file of this version: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("saving the state failed: {0}")]
    Join(String),
}

/// The state file of one simulator.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Changes announced so far (each save call is one).
    requested: AtomicU64,
    /// Changes covered by the file on disk.
    saved: AtomicU64,
    /// One writer at a time.
    writer: tokio::sync::Mutex<()>,
}

impl StateFile {
    /// The file `<dir>/<name>.json`; creates `dir` if missing.
    pub fn open(dir: &Path, name: &str) -> Result<Self, StateFileError> {
        std::fs::create_dir_all(dir).map_err(|source| StateFileError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            path: dir.join(format!("{name}.json")),
            requested: AtomicU64::new(0),
            saved: AtomicU64::new(0),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or `None` when nothing was saved yet.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, StateFileError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateFileError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateFileError::Decode {
                path: self.path.clone(),
                source,
            })
    }

    /// Saves the state `snapshot` renders, unless a save that began after this call's change
    /// already wrote it. Call it after the change is made in memory.
    pub async fn save(&self, snapshot: impl FnOnce() -> Vec<u8>) -> Result<(), StateFileError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _writer = self.writer.lock().await;
        if self.saved.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every change announced up to here is in memory already, so in the snapshot.
        let covers = self.requested.load(Ordering::SeqCst);
        let bytes = snapshot();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || replace(&path, &bytes))
            .await
            .map_err(|e| StateFileError::Join(e.to_string()))??;
        self.saved.store(covers, Ordering::SeqCst);
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically and durably.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    use std::io::Write;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StateFileError::Io { path, source }
    };
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("waybill-state-{}", uuid::Uuid::now_v7().simple()))
    }

    #[tokio::test]
    async fn what_was_saved_is_loaded_by_the_next_process() {
        let dir = scratch();
        let file = StateFile::open(&dir, "sandbox").expect("open");
        assert_eq!(file.load::<Vec<u32>>().expect("nothing yet"), None);
        file.save(|| serde_json::to_vec(&vec![1, 2, 3]).expect("json"))
            .await
            .expect("save");
        file.save(|| serde_json::to_vec(&vec![4]).expect("json"))
            .await
            .expect("save");
        let again = StateFile::open(&dir, "sandbox").expect("open");
        assert_eq!(again.load::<Vec<u32>>().expect("load"), Some(vec![4]));
        assert!(!dir.join("sandbox.json.tmp").exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_file_of_another_shape_is_an_error_naming_it_not_an_empty_state() {
        let dir = scratch();
        let file = StateFile::open(&dir, "sandbox").expect("open");
        std::fs::write(file.path(), b"{\"half\":").expect("write");
        let error = file.load::<Vec<u32>>().expect_err("garbage");
        assert!(error.to_string().contains("sandbox.json"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn concurrent_saves_all_end_covered_by_the_last_state() {
        let dir = scratch();
        let file = std::sync::Arc::new(StateFile::open(&dir, "sandbox").expect("open"));
        let value = std::sync::Arc::new(AtomicU64::new(0));
        let saves: Vec<_> = (0..20)
            .map(|_| {
                let file = file.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    value.fetch_add(1, Ordering::SeqCst);
                    file.save(|| serde_json::to_vec(&value.load(Ordering::SeqCst)).expect("json"))
                        .await
                })
            })
            .collect();
        for save in saves {
            save.await.expect("joined").expect("saved");
        }
        assert_eq!(file.load::<u64>().expect("load"), Some(20));
        std::fs::remove_dir_all(&dir).ok();
    }
}

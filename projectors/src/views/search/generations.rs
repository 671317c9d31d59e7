//! The embedded index's generations on disk, so that `waybill rebuild search` can build a new
//! index while the projector keeps writing the live one (Tantivy allows one writer per
//! directory) and switch readers over in one step.
//!
//! ```text
//! <WAYBILL_SEARCH_DIR>/
//!   CURRENT        the live generation's name ("g-<uuid v7>"); written whole (temporary file,
//!                  fsync, rename, fsync of the directory)
//!   NEXT           {"generation", "resume_from"}: a rebuilt generation offered to the running
//!                  projector, which catches it up from the log and switches CURRENT to it
//!   g-<uuid v7>/   one Tantivy index per generation, with its `waybill-generation.json` marker
//!   meta.json, …   an index made before generations (no CURRENT): generation "root"
//! ```
//!
//! A directory without CURRENT is its own live generation ("root"), so an index made by an
//! earlier version, or a new one, keeps working as it is; the first rebuild moves it into a
//! generation directory and removes the root's index files. Readers follow CURRENT, the
//! projector writes the generation it names, and only the projector (or a rebuild holding the
//! live generation's writer lock, when no projector runs) switches it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::directory::{Directory, DirectoryLock, MmapDirectory, INDEX_WRITER_LOCK};

use super::SearchError;

/// The file naming the live generation.
pub const CURRENT_FILE: &str = "CURRENT";
/// The file offering a rebuilt generation to the running projector.
pub const NEXT_FILE: &str = "NEXT";
const GENERATION_PREFIX: &str = "g-";

/// One generation of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generation {
    /// The index files directly in the configured directory (no CURRENT yet).
    Root,
    /// `<dir>/<name>`.
    Named(String),
}

impl Generation {
    /// The name CURRENT and the marker use (`root` for the root generation).
    pub fn name(&self) -> &str {
        match self {
            Self::Root => "root",
            Self::Named(name) => name,
        }
    }

    fn parse(name: &str) -> Option<Self> {
        let valid = name.starts_with(GENERATION_PREFIX)
            && name.len() > GENERATION_PREFIX.len()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        valid.then(|| Self::Named(name.to_owned()))
    }
}

/// A rebuilt generation offered to the running projector: it catches the generation up from
/// the log, starting a margin before `resume_from` (the last event the rebuild read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextGeneration {
    pub generation: String,
    pub resume_from: Option<DateTime<Utc>>,
}

/// The configured index directory and its generations.
#[derive(Debug, Clone)]
pub struct Layout {
    base: PathBuf,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        dir: path.display().to_string(),
        source,
    }
}

impl Layout {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The directory holding `generation`'s index.
    pub fn dir(&self, generation: &Generation) -> PathBuf {
        match generation {
            Generation::Root => self.base.clone(),
            Generation::Named(name) => self.base.join(name),
        }
    }

    /// Whether `generation` holds an index (its `meta.json` exists).
    pub fn has_index(&self, generation: &Generation) -> bool {
        self.dir(generation).join("meta.json").is_file()
    }

    /// The live generation: the one CURRENT names, else the root.
    pub fn current(&self) -> Result<Generation, SearchError> {
        let path = self.base.join(CURRENT_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Generation::parse(text.trim()).ok_or_else(|| SearchError::Tantivy {
                dir: self.base.display().to_string(),
                detail: format!("{CURRENT_FILE} names no generation: {:?}", text.trim()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Generation::Root),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Makes the directory of a new, empty generation.
    pub fn create_generation(&self) -> Result<Generation, SearchError> {
        let name = format!("{GENERATION_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let generation = Generation::Named(name);
        let dir = self.dir(&generation);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(generation)
    }

    /// Makes `generation` the live one: CURRENT written whole and durable.
    pub fn switch_to(&self, generation: &Generation) -> Result<(), SearchError> {
        let Generation::Named(name) = generation else {
            return Err(SearchError::Tantivy {
                dir: self.base.display().to_string(),
                detail: "the root generation cannot be switched back to".to_owned(),
            });
        };
        self.write_whole(CURRENT_FILE, name.as_bytes())
    }

    /// The generation a rebuild offers, if any.
    pub fn next(&self) -> Result<Option<NextGeneration>, SearchError> {
        let path = self.base.join(NEXT_FILE);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<NextGeneration>(&bytes) {
                Ok(next) if Generation::parse(&next.generation).is_some() => Ok(Some(next)),
                Ok(next) => Err(SearchError::Worker(format!(
                    "{}: {:?} is no generation",
                    path.display(),
                    next.generation
                ))),
                Err(e) => Err(SearchError::Worker(format!("{}: {e}", path.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Offers a rebuilt generation to the running projector.
    pub fn offer(&self, next: &NextGeneration) -> Result<(), SearchError> {
        let bytes = serde_json::to_vec(next).map_err(|e| SearchError::Worker(e.to_string()))?;
        self.write_whole(NEXT_FILE, &bytes)
    }

    /// Withdraws the offer (adopted, or given up).
    pub fn withdraw_offer(&self) -> Result<(), SearchError> {
        let path = self.base.join(NEXT_FILE);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_base(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// The writer lock of `generation`, if nobody holds it (`None`: a writer is open, in this
    /// process or another). A generation whose directory is gone has nobody writing it.
    pub fn try_lock(&self, generation: &Generation) -> Result<Option<WriterLock>, SearchError> {
        let dir = self.dir(generation);
        if !dir.is_dir() {
            return Ok(Some(WriterLock(None)));
        }
        let directory = MmapDirectory::open(&dir).map_err(|e| SearchError::Tantivy {
            dir: dir.display().to_string(),
            detail: e.to_string(),
        })?;
        match directory.acquire_lock(&INDEX_WRITER_LOCK) {
            Ok(lock) => Ok(Some(WriterLock(Some(lock)))),
            Err(tantivy::directory::error::LockError::LockBusy) => Ok(None),
            Err(e) => Err(SearchError::Tantivy {
                dir: dir.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// Removes a generation that is no longer live: its directory, or for the root generation
    /// the index files in the configured directory (the generations and pointers stay).
    pub fn remove(&self, generation: &Generation) -> Result<(), SearchError> {
        match generation {
            Generation::Named(_) => {
                let dir = self.dir(generation);
                match fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&dir)(e)),
                }
            }
            Generation::Root => {
                let entries = fs::read_dir(&self.base).map_err(io_error(&self.base))?;
                for entry in entries {
                    let entry = entry.map_err(io_error(&self.base))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if entry.path().is_file() && is_root_index_file(&name) {
                        fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
                    }
                }
            }
        }
        self.sync_base()
    }

    /// Generation directories neither live nor offered, nobody writing them: left by a rebuild
    /// that stopped half-way.
    pub fn abandoned(&self) -> Result<Vec<Generation>, SearchError> {
        let live = self.current()?;
        let offered = self.next().ok().flatten().map(|n| n.generation);
        let mut found = Vec::new();
        let entries = match fs::read_dir(&self.base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io_error(&self.base)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error(&self.base))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(generation) = Generation::parse(&name) else {
                continue;
            };
            if !entry.path().is_dir()
                || generation == live
                || offered.as_deref() == Some(generation.name())
            {
                continue;
            }
            if self.try_lock(&generation)?.is_some() {
                found.push(generation);
            }
        }
        Ok(found)
    }

    /// Writes `name` in the configured directory whole: a temporary file made durable, renamed
    /// over it, and the directory made durable.
    fn write_whole(&self, name: &str, bytes: &[u8]) -> Result<(), SearchError> {
        fs::create_dir_all(&self.base).map_err(io_error(&self.base))?;
        let path = self.base.join(name);
        let temporary = self.base.join(format!("{name}.tmp"));
        let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
        drop(file);
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        self.sync_base()
    }

    fn sync_base(&self) -> Result<(), SearchError> {
        File::open(&self.base)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.base))
    }
}

/// A generation's writer lock, held until dropped (`None` inside: the generation has no
/// directory, so there is nothing to lock).
pub struct WriterLock(#[allow(dead_code)] Option<DirectoryLock>);

/// Files of an index kept directly in the configured directory: Tantivy's (`meta.json`,
/// `.managed.json`, its lock files, segment files named by a 32-digit hex id) and the marker.
fn is_root_index_file(name: &str) -> bool {
    if matches!(name, "meta.json" | ".managed.json")
        || name.starts_with(".tantivy-")
        || name.starts_with(super::marker::TANTIVY_MARKER_FILE)
    {
        return true;
    }
    let id = name.split('.').next().unwrap_or_default();
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) && name.len() > 33
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch() -> Layout {
        let dir = std::env::temp_dir().join(format!(
            "waybill-generations-test-{}",
            uuid::Uuid::now_v7().simple()
        ));
        fs::create_dir_all(&dir).unwrap();
        Layout::new(dir)
    }

    #[test]
    fn a_directory_without_current_is_its_own_live_generation() {
        let layout = scratch();
        assert_eq!(layout.current().unwrap(), Generation::Root);
        let next = layout.create_generation().unwrap();
        assert!(layout.dir(&next).is_dir());
        layout.switch_to(&next).unwrap();
        assert_eq!(layout.current().unwrap(), next);
        assert!(
            !layout.base().join("CURRENT.tmp").exists(),
            "no temporary file left"
        );
        fs::remove_dir_all(layout.base()).unwrap();
    }

    #[test]
    fn current_and_next_refuse_names_outside_the_directory() {
        let layout = scratch();
        fs::write(layout.base().join(CURRENT_FILE), "../elsewhere").unwrap();
        assert!(layout.current().is_err());
        fs::write(
            layout.base().join(NEXT_FILE),
            r#"{"generation":"/tmp","resume_from":null}"#,
        )
        .unwrap();
        assert!(layout.next().is_err());
        fs::remove_dir_all(layout.base()).unwrap();
    }

    #[test]
    fn an_offer_is_read_back_and_withdrawn() {
        let layout = scratch();
        assert_eq!(layout.next().unwrap(), None);
        let offer = NextGeneration {
            generation: "g-0123abcd".into(),
            resume_from: Some(Utc::now()),
        };
        layout.offer(&offer).unwrap();
        assert_eq!(layout.next().unwrap(), Some(offer));
        layout.withdraw_offer().unwrap();
        layout.withdraw_offer().unwrap();
        assert_eq!(layout.next().unwrap(), None);
        fs::remove_dir_all(layout.base()).unwrap();
    }

    #[test]
    fn removing_the_root_generation_keeps_pointers_generations_and_strangers() {
        let layout = scratch();
        let base = layout.base().to_path_buf();
        for name in [
            "meta.json",
            ".managed.json",
            ".tantivy-writer.lock",
            "waybill-generation.json",
            "0123456789abcdef0123456789abcdef.store",
            "0123456789abcdef0123456789abcdef.7.del",
        ] {
            fs::write(base.join(name), "x").unwrap();
        }
        fs::write(base.join("notes.txt"), "mine").unwrap();
        let generation = layout.create_generation().unwrap();
        layout.switch_to(&generation).unwrap();
        layout.remove(&Generation::Root).unwrap();
        let mut left: Vec<String> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                CURRENT_FILE.to_owned(),
                generation.name().to_owned(),
                "notes.txt".to_owned()
            ]
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_generation_with_an_open_writer_is_locked_and_not_abandoned() {
        let layout = scratch();
        let held = layout.create_generation().unwrap();
        let left = layout.create_generation().unwrap();
        let lock = layout.try_lock(&held).unwrap();
        assert!(lock.is_some());
        assert!(
            layout.try_lock(&held).unwrap().is_none(),
            "a second lock waits"
        );
        assert_eq!(layout.abandoned().unwrap(), vec![left.clone()]);
        drop(lock);
        let mut abandoned = layout.abandoned().unwrap();
        abandoned.sort_by(|a, b| a.name().cmp(b.name()));
        assert_eq!(abandoned, vec![held, left]);
        fs::remove_dir_all(layout.base()).unwrap();
    }
}

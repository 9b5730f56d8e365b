//! Layer: mpi. May use: `error` and std.
//! The settings only an MPI pool has ([`MpiSettings`]): how spawn mode
//! starts its workers. The builder sets them; the hub reads them when it
//! spawns a group and when it looks for a free group spawned the same way.

use std::path::PathBuf;

use crate::Error;

/// The settings only an MPI pool has: how spawn mode starts its workers.
/// `pub` only for the sealed trait's associated type; no user names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpiSettings {
    program: Option<PathBuf>,
    /// `MPI_Info` pairs for `MPI_Comm_spawn`, the working directory's
    /// `wdir` among them.
    info: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

impl MpiSettings {
    /// Spawn `path` instead of this executable.
    pub(crate) fn set_program(&mut self, path: PathBuf) {
        self.program = Some(path);
    }

    /// Adds an `MPI_Info` pair for `MPI_Comm_spawn`.
    pub(crate) fn add_info(&mut self, key: String, value: String) {
        self.info.push((key, value));
    }

    /// Adds an environment variable for the workers.
    pub(crate) fn add_env(&mut self, key: String, value: String) {
        self.env.push((key, value));
    }

    /// What `MPI_Comm_spawn` is given: the program (this executable's path
    /// unless another was set) and the `MPI_Info` pairs, the environment
    /// among them as Open MPI's `env` key (one `NAME=VALUE` a line).
    pub(crate) fn spawn_args(&self) -> Result<(PathBuf, Vec<(String, String)>), Error> {
        let program = match &self.program {
            Some(program) => program.clone(),
            None => std::env::current_exe().map_err(|e| Error::SpawnFailed {
                reason: format!("cannot find this executable: {e}"),
            })?,
        };
        let mut pairs = self.info.clone();
        if !self.env.is_empty() {
            let lines: Vec<String> = (self.env.iter())
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            pairs.push(("env".into(), lines.join("\n")));
        }
        Ok((program, pairs))
    }
}

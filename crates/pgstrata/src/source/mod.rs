//! What is on disk: manifests, packages and their migrations, projects, other tools' folders, Strata's own versioned
//! folder, managed-code files,
//! repeatable scripts. Nothing here touches a database; everything is checked when it is loaded.

pub mod code;
pub mod duration;
pub mod files;
pub mod layout;
pub mod lint_settings;
pub mod manifest;
pub mod package;
pub(crate) mod pgpkg;
pub mod project;
pub mod repeatable;
pub mod scaffold;
pub mod script;
pub mod versioned;

/// Name of Strata's own package (its history tables). Reserved.
pub(crate) const STRATA_PACKAGE: &str = "strata";

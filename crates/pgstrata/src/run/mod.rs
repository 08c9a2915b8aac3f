//! Commands that change the database: `up`, `down`, `adopt`/`baseline`, repeatable scripts, managed code, tests.

pub mod adopt;
pub mod code;
pub mod down;
pub mod repeatable;
pub mod test;
pub mod up;

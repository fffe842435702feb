//! `#[cofferdam::sandbox]` (in progress).

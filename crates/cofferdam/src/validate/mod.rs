//! Checks on values coming back from foreign code (filled in by the
//! `#[cofferdam::sandbox]` work).

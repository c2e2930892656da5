//! Reading `kind = "http"` and the `timekit` and `crm.com` presets, one module per concern.

mod crm;
mod errors;
mod reading;
mod timekit;

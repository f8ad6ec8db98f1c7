//! The SCIM 2.0 service provider (`/scim/v2`): the protocol engine (schema,
//! filter, PATCH paths and application, attribute projection) and the HTTP
//! adapter that turns requests into workspace operations and back.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
pub mod json;
pub mod list;
pub mod model;
pub mod patch;
pub mod path;
pub mod project;
pub mod render;
pub mod router;
pub mod schema;
pub mod users;

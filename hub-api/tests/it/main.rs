//! The hub's integration tests, as one test binary: each module is one area, driven through
//! the real `hub-api` binary with real clients (kubectl, kube-rs, the Python client).

mod auth_support;
mod common;

mod api_exports;
mod auth_negative;
mod backup;
mod cli;
mod connections;
mod crd_rules;
mod edge_controllers;
mod errors;
mod etcd;
mod events;
mod garbage_collection;
mod join;
mod kopf;
mod kube_controller;
mod kube_rs;
mod kubectl;
mod kubectl_matrix;
mod leader_election;
mod migrate;
mod observability;
mod oidc_discovery;
mod packaging;
mod python_client;
mod rbac;
mod reviews;
mod service_account_tokens;
mod shared_identity;
mod tenants;
mod transport;
mod workloads;
mod workspaces;

//! The single workspace record.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::StoreError;
use super::codec::{decode, encode};
use super::tables::{WORKSPACE, WORKSPACE_KEY};
use crate::workspace::model::Workspace;

pub fn get(txn: &ReadTransaction) -> Result<Option<Workspace>, StoreError> {
    let t = txn.open_table(WORKSPACE)?;
    t.get(WORKSPACE_KEY)?.map(|v| decode(v.value())).transpose()
}

pub fn get_w(txn: &WriteTransaction) -> Result<Option<Workspace>, StoreError> {
    let t = txn.open_table(WORKSPACE)?;
    t.get(WORKSPACE_KEY)?.map(|v| decode(v.value())).transpose()
}

pub fn put(txn: &WriteTransaction, w: &Workspace) -> Result<(), StoreError> {
    let mut t = txn.open_table(WORKSPACE)?;
    t.insert(WORKSPACE_KEY, encode(w)?.as_slice())?;
    Ok(())
}

//! A listing order with per-block counts: `seq → id` plus `block → count`
//! for blocks of [`ORDER_BLOCK`] sequence numbers. The n-th entry is found
//! by summing block counts (n / 256 small rows) and then walking at most one
//! block, so a page costs the same at offset 0 and at offset 100,000.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::StoreError;
use super::tables::ORDER_BLOCK;

#[derive(Clone, Copy)]
pub struct OrderIndex {
    pub order: TableDefinition<'static, u64, u128>,
    pub blocks: TableDefinition<'static, u64, u64>,
}

impl OrderIndex {
    /// Moves an entry from `listed_at` to `want` (either may be `None`).
    /// `listed_at` is checked against the table, not trusted.
    pub fn set(
        &self,
        txn: &WriteTransaction,
        id: u128,
        listed_at: Option<u64>,
        want: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut order = txn.open_table(self.order)?;
        let mut blocks = txn.open_table(self.blocks)?;
        let listed_at = match listed_at {
            Some(seq) if order.get(seq)?.map(|v| v.value()) == Some(id) => Some(seq),
            _ => None,
        };
        if listed_at == want {
            return Ok(());
        }
        if let Some(seq) = listed_at {
            order.remove(seq)?;
            let block = seq / ORDER_BLOCK;
            let n = blocks.get(block)?.map(|v| v.value()).unwrap_or(0);
            if n <= 1 {
                blocks.remove(block)?;
            } else {
                blocks.insert(block, n - 1)?;
            }
        }
        if let Some(seq) = want {
            order.insert(seq, id)?;
            let block = seq / ORDER_BLOCK;
            let n = blocks.get(block)?.map(|v| v.value()).unwrap_or(0);
            blocks.insert(block, n + 1)?;
        }
        Ok(())
    }

    pub fn len(&self, txn: &ReadTransaction) -> Result<u64, StoreError> {
        Ok(txn.open_table(self.order)?.len()?)
    }

    /// Ids of entries `offset .. offset + limit` in order.
    pub fn page(&self, txn: &ReadTransaction, offset: u64, limit: usize) -> Result<Vec<u128>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1000));
        if limit == 0 {
            return Ok(out);
        }
        self.scan_from(txn, offset, |id| {
            out.push(id);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Ids from position `offset` on, in order, until `f` returns false;
    /// finding the start costs the same as [`OrderIndex::page`].
    pub fn scan_from(
        &self,
        txn: &ReadTransaction,
        offset: u64,
        mut f: impl FnMut(u128) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let blocks = txn.open_table(self.blocks)?;
        let mut skip = offset;
        let mut start_seq = None;
        for row in blocks.iter()? {
            let (block, n) = row?;
            let n = n.value();
            if skip < n {
                start_seq = Some(block.value() * ORDER_BLOCK);
                break;
            }
            skip -= n;
        }
        let Some(start_seq) = start_seq else {
            return Ok(());
        };
        let order = txn.open_table(self.order)?;
        for row in order
            .range(start_seq..)?
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        {
            let (_, id) = row?;
            if !f(id.value())? {
                break;
            }
        }
        Ok(())
    }

    /// Every id in order, until `f` returns false.
    pub fn scan(
        &self,
        txn: &ReadTransaction,
        mut f: impl FnMut(u128) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let order = txn.open_table(self.order)?;
        for row in order.iter()? {
            let (_, id) = row?;
            if !f(id.value())? {
                break;
            }
        }
        Ok(())
    }
}

//! Kernel objects for the tasks the root task creates, retyped from boot untyped memory.

use core::ops::Range;

use crate::BootError;

/// Most untyped regions the allocator draws from.
const MAX_REGIONS: usize = 64;

/// Hands out kernel objects: each one is retyped from boot untyped memory into
/// the next free slot of the root task's CNode.
pub struct ObjectAllocator {
    /// Non-device untyped regions, largest first; `current` indexes the one in use.
    untyped: heapless::Vec<sel4::cap::Untyped, MAX_REGIONS>,
    current: usize,
    free_slots: Range<usize>,
}

impl ObjectAllocator {
    /// Uses the non-device untyped regions (largest first) and the empty slots
    /// of the root CNode that the kernel reports in `bootinfo`.
    pub fn new(bootinfo: &sel4::BootInfo) -> Result<Self, BootError> {
        let mut regions: heapless::Vec<(usize, usize), MAX_REGIONS> = heapless::Vec::new();
        for (index, desc) in bootinfo.untyped_list().iter().enumerate() {
            if !desc.is_device() && regions.push((desc.size_bits(), index)).is_err() {
                break;
            }
        }
        regions.sort_unstable_by(|a, b| b.cmp(a));
        if regions.is_empty() {
            return Err(BootError::NoUntyped);
        }
        let untyped = regions.iter().map(|&(_, index)| bootinfo.untyped().index(index).cap()).collect();
        Ok(Self { untyped, current: 0, free_slots: bootinfo.empty().range() })
    }

    /// A free slot of the root CNode.
    pub fn slot(&mut self) -> Result<usize, BootError> {
        self.free_slots.next().ok_or(BootError::OutOfSlots)
    }

    /// Corresponds to `seL4_Untyped_Retype()` of one object into a fresh slot;
    /// moves on to the next untyped region when one is exhausted.
    pub fn allocate(&mut self, blueprint: sel4::ObjectBlueprint) -> Result<sel4::cap::Unspecified, BootError> {
        let slot = self.slot()?;
        loop {
            let untyped = *self.untyped.get(self.current).ok_or(BootError::Kernel(sel4::Error::NotEnoughMemory))?;
            match untyped.untyped_retype(
                &blueprint,
                &sel4::init_thread::slot::CNODE.cap().absolute_cptr_for_self(),
                slot,
                1,
            ) {
                Ok(()) => return Ok(sel4::init_thread::Slot::from_index(slot).cap()),
                Err(sel4::Error::NotEnoughMemory) => self.current += 1,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Corresponds to `seL4_Untyped_Retype()` of `count` objects into slots
    /// `offset..offset + count` of the CNode `destination` (another task's CNode: the
    /// objects never pass through this task's CSpace). A batch that does not fit in the
    /// current untyped region goes to the next one whole.
    pub fn retype_into(
        &mut self,
        blueprint: sel4::ObjectBlueprint,
        destination: sel4::cap::CNode,
        offset: usize,
        count: usize,
    ) -> Result<(), BootError> {
        loop {
            let untyped = *self.untyped.get(self.current).ok_or(BootError::Kernel(sel4::Error::NotEnoughMemory))?;
            match untyped.untyped_retype(&blueprint, &destination.absolute_cptr_for_self(), offset, count) {
                Ok(()) => return Ok(()),
                Err(sel4::Error::NotEnoughMemory) => self.current += 1,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// An object whose size the kernel fixes (TCB, endpoint, VSpace, page …).
    pub fn allocate_fixed<T: sel4::CapTypeForObjectOfFixedSize>(&mut self) -> Result<sel4::Cap<T>, BootError> {
        Ok(self.allocate(T::object_blueprint())?.cast())
    }

    /// An object of `size_bits` (a CNode of `2^size_bits` slots, …).
    pub fn allocate_sized<T: sel4::CapTypeForObjectOfVariableSize>(
        &mut self,
        size_bits: usize,
    ) -> Result<sel4::Cap<T>, BootError> {
        Ok(self.allocate(T::object_blueprint(size_bits))?.cast())
    }

    /// A copy of `cap` with `rights` and `badge`, in a fresh slot.
    pub fn mint<T: sel4::CapType>(
        &mut self,
        cap: sel4::Cap<T>,
        rights: sel4::CapRights,
        badge: sel4::Word,
    ) -> Result<sel4::Cap<T>, BootError> {
        let slot = self.slot()?;
        let cnode = sel4::init_thread::slot::CNODE.cap();
        let destination: sel4::cap::Unspecified = sel4::init_thread::Slot::from_index(slot).cap();
        cnode.absolute_cptr(destination).mint(&cnode.absolute_cptr(cap), rights, badge)?;
        Ok(sel4::init_thread::Slot::<sel4::cap_type::Unspecified>::from_index(slot).cap().cast())
    }

    /// A copy of the capability in `slot` of the root CNode, in a fresh slot
    /// (a frame mapped into a second VSpace needs a capability of its own).
    pub fn copy<T: sel4::CapType>(&mut self, cap: sel4::Cap<T>) -> Result<sel4::Cap<T>, BootError> {
        let slot = self.slot()?;
        let cnode = sel4::init_thread::slot::CNODE.cap();
        let destination: sel4::cap::Unspecified = sel4::init_thread::Slot::from_index(slot).cap();
        cnode.absolute_cptr(destination).copy(&cnode.absolute_cptr(cap), sel4::CapRights::all())?;
        Ok(sel4::init_thread::Slot::<sel4::cap_type::Unspecified>::from_index(slot).cap().cast())
    }
}

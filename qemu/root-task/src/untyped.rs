//! Kernel objects for the tasks the root task creates, retyped from boot untyped memory.

use core::ops::Range;

use crate::BootError;

/// Hands out kernel objects: each one is retyped from one untyped region into
/// the next free slot of the root task's CNode.
pub struct ObjectAllocator {
    untyped: sel4::cap::Untyped,
    free_slots: Range<usize>,
}

impl ObjectAllocator {
    /// Uses the largest non-device untyped region and the empty slots of the
    /// root CNode that the kernel reports in `bootinfo`.
    pub fn new(bootinfo: &sel4::BootInfo) -> Result<Self, BootError> {
        let (index, _) = bootinfo
            .untyped_list()
            .iter()
            .enumerate()
            .filter(|(_, desc)| !desc.is_device())
            .max_by_key(|(_, desc)| desc.size_bits())
            .ok_or(BootError::NoUntyped)?;
        Ok(Self {
            untyped: bootinfo.untyped().index(index).cap(),
            free_slots: bootinfo.empty().range(),
        })
    }

    /// Corresponds to `seL4_Untyped_Retype()` of one object into a fresh slot.
    pub fn allocate(
        &mut self,
        blueprint: sel4::ObjectBlueprint,
    ) -> Result<sel4::cap::Unspecified, BootError> {
        let slot = self.free_slots.next().ok_or(BootError::OutOfSlots)?;
        self.untyped.untyped_retype(
            &blueprint,
            &sel4::init_thread::slot::CNODE
                .cap()
                .absolute_cptr_for_self(),
            slot,
            1,
        )?;
        Ok(sel4::init_thread::Slot::from_index(slot).cap())
    }

    /// An object whose size the kernel fixes (TCB, endpoint, VSpace, page …).
    pub fn allocate_fixed<T: sel4::CapTypeForObjectOfFixedSize>(
        &mut self,
    ) -> Result<sel4::Cap<T>, BootError> {
        Ok(self.allocate(T::object_blueprint())?.cast())
    }

    /// An object of `size_bits` (a CNode of `2^size_bits` slots, …).
    pub fn allocate_sized<T: sel4::CapTypeForObjectOfVariableSize>(
        &mut self,
        size_bits: usize,
    ) -> Result<sel4::Cap<T>, BootError> {
        Ok(self.allocate(T::object_blueprint(size_bits))?.cast())
    }
}

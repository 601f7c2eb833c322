"""What the time fault writes into a process: a page of position-independent x86_64 machine code
(hand-assembled below, instruction by instruction) that asks the kernel for the real time with the
`syscall` instruction and adds the fault's offset, and 12-byte jumps that send the vDSO's
clock_gettime, gettimeofday and time to it. Also the vDSO's dynamic symbol table, read from its ELF,
and the trampoline our injected system calls run from (in the vDSO's zero padding, see trampoline()).

The page, one 4 KiB anonymous r-x mapping (between two PROT_NONE guard pages), starts with a header
that names the fault and keeps the bytes each jump replaced, so a fresh agent finds and undoes the
patch from the process alone:

    0x000  16s  MAGIC
    0x010  16s  the fault's short id (12 hex digits, NUL padded)
    0x020  u64  mask of the shifted clock ids (bit n: clock id n)
    0x028  i64  offset, whole seconds (rounded down)   \\ for clock_gettime and time:
    0x030  i64  offset, nanoseconds left (0..999999999) /  offset = sec + nsec
    0x038  i64  offset in microseconds, whole seconds  \\ for gettimeofday
    0x040  i64  offset, microseconds left (0..999999)  /
    0x048  i64  offset in nanoseconds, as asked
    0x050  u32  number of patched vDSO functions (at most 3)
    0x058  3 x (u64 offset of the function in the vDSO, 16s the original bytes (12 used), u64 its routine)
    0x100  fake clock_gettime, 0x180 fake gettimeofday, 0x200 fake time
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

PAGE = 4096
MAGIC = b"CHAOSPLANE/TIME\x01"
JUMP_SIZE = 12
SYS_GETTIMEOFDAY = 96
SYS_CLOCK_GETTIME = 228
SYS_MMAP = 9
SYS_MUNMAP = 11

# Offsets of the header's fields in the page.
MASK, DSEC, DNSEC, USEC_SEC, DUSEC, OFFSET_NS, COUNT, PATCHES = 0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x50, 0x58
PATCH_RECORD = struct.Struct("<Q16sQ")
ROUTINES = {"clock_gettime": 0x100, "gettimeofday": 0x180, "time": 0x200}
#: vDSO symbol of each routine (x86_64 names; `clock_gettime` etc. are weak aliases at the same address).
SYMBOLS = {"clock_gettime": "__vdso_clock_gettime", "gettimeofday": "__vdso_gettimeofday", "time": "__vdso_time"}

# -- the routines --------------------------------------------------------------------------------------
# Each item is a label (str) or an instruction: (bytes, text, fixup). A fixup (width, label) is a
# displacement to `label` measured from the end of the instruction, stored in its last `width` bytes
# (a rel8 jump, or a disp32 of a rip-relative operand); labels in capitals are header fields above.
# SysV ABI: rdi, rsi are the arguments, rax the result; rcx, rdx, r8, r11 are ours to clobber, and the
# `syscall` instruction itself clobbers rcx and r11 and keeps every other register.
Insn = tuple[bytes, str, tuple[int, str] | None]
_NONE = None
_R8, _D32 = 1, 4
_NS_MAX, _US_MAX = b"\xff\xc9\x9a\x3b", b"\x3f\x42\x0f\x00"  # 999999999, 999999 (imm32, little-endian)
_NS_ONE, _US_ONE = b"\x00\xca\x9a\x3b", b"\x40\x42\x0f\x00"  # 1000000000, 1000000

CLOCK_GETTIME: list[str | Insn] = [
    (b"\xb8\xe4\x00\x00\x00", "mov eax, 228          ; SYS_clock_gettime(rdi = clock id, rsi = tp)", _NONE),
    (b"\x0f\x05", "syscall               ; the real clock, not the vDSO (which jumps here)", _NONE),
    (b"\x48\x85\xc0", "test rax, rax", _NONE),
    (b"\x75\x00", "jnz done              ; an error (-EINVAL, -EFAULT) goes back as is", (_R8, "done")),
    (b"\x83\xff\x3f", "cmp edi, 63", _NONE),
    (b"\x77\x00", "ja done               ; unsigned: ids over 63 and negative (CPU-clock) ids are never shifted",
     (_R8, "done")),
    (b"\x48\x8b\x15\x00\x00\x00\x00", "mov rdx, [rip + MASK]", (_D32, "MASK")),
    (b"\x48\x0f\xa3\xfa", "bt rdx, rdi           ; CF = bit <clock id> of the mask (offset taken mod 64)", _NONE),
    (b"\x73\x00", "jnc done              ; a clock this fault leaves alone", (_R8, "done")),
    (b"\x48\x8b\x15\x00\x00\x00\x00", "mov rdx, [rip + DSEC]", (_D32, "DSEC")),
    (b"\x48\x01\x16", "add [rsi], rdx        ; tv_sec += whole seconds of the offset", _NONE),
    (b"\x48\x8b\x15\x00\x00\x00\x00", "mov rdx, [rip + DNSEC]", (_D32, "DNSEC")),
    (b"\x48\x03\x56\x08", "add rdx, [rsi + 8]    ; tv_nsec + the offset's nanoseconds: 0 .. 1999999998", _NONE),
    (b"\x48\x81\xfa" + _NS_MAX, "cmp rdx, 999999999", _NONE),
    (b"\x7e\x00", "jle store", (_R8, "store")),
    (b"\x48\x81\xea" + _NS_ONE, "sub rdx, 1000000000", _NONE),
    (b"\x48\xff\x06", "inc qword [rsi]       ; carry a second", _NONE),
    "store",
    (b"\x48\x89\x56\x08", "mov [rsi + 8], rdx    ; tv_nsec", _NONE),
    "done",
    (b"\x31\xc9", "xor ecx, ecx          ; syscall left an address of this page in rcx: do not hand it out", _NONE),
    (b"\xc3", "ret                   ; rax = 0 or -errno, as the vDSO returns", _NONE),
]

GETTIMEOFDAY: list[str | Insn] = [
    (b"\xb8\x60\x00\x00\x00", "mov eax, 96           ; SYS_gettimeofday(rdi = tv, rsi = tz): fills tz too", _NONE),
    (b"\x0f\x05", "syscall", _NONE),
    (b"\x48\x85\xc0", "test rax, rax", _NONE),
    (b"\x75\x00", "jnz done", (_R8, "done")),
    (b"\x48\x85\xff", "test rdi, rdi", _NONE),
    (b"\x74\x00", "jz done               ; only the time zone was asked for", (_R8, "done")),
    (b"\x48\x8b\x15\x00\x00\x00\x00", "mov rdx, [rip + USEC_SEC]", (_D32, "USEC_SEC")),
    (b"\x48\x01\x17", "add [rdi], rdx        ; tv_sec += whole seconds of the offset", _NONE),
    (b"\x48\x8b\x15\x00\x00\x00\x00", "mov rdx, [rip + DUSEC]", (_D32, "DUSEC")),
    (b"\x48\x03\x57\x08", "add rdx, [rdi + 8]    ; tv_usec + the offset's microseconds: 0 .. 1999998", _NONE),
    (b"\x48\x81\xfa" + _US_MAX, "cmp rdx, 999999", _NONE),
    (b"\x7e\x00", "jle store", (_R8, "store")),
    (b"\x48\x81\xea" + _US_ONE, "sub rdx, 1000000", _NONE),
    (b"\x48\xff\x07", "inc qword [rdi]       ; carry a second", _NONE),
    "store",
    (b"\x48\x89\x57\x08", "mov [rdi + 8], rdx    ; tv_usec", _NONE),
    "done",
    (b"\x31\xc9", "xor ecx, ecx", _NONE),
    (b"\xc3", "ret", _NONE),
]

TIME: list[str | Insn] = [
    (b"\x48\x83\xec\x18", "sub rsp, 24           ; a struct timespec on the stack (no calls: alignment is moot)",
     _NONE),
    (b"\x49\x89\xf8", "mov r8, rdi           ; tloc, kept across the syscall", _NONE),
    (b"\x31\xff", "xor edi, edi          ; CLOCK_REALTIME", _NONE),
    (b"\x48\x89\xe6", "mov rsi, rsp", _NONE),
    (b"\xb8\xe4\x00\x00\x00", "mov eax, 228          ; SYS_clock_gettime", _NONE),
    (b"\x0f\x05", "syscall", _NONE),
    (b"\x48\x85\xc0", "test rax, rax", _NONE),
    (b"\x75\x00", "jnz out", (_R8, "out")),
    (b"\x48\x8b\x04\x24", "mov rax, [rsp]        ; tv_sec", _NONE),
    (b"\x48\x03\x05\x00\x00\x00\x00", "add rax, [rip + DSEC]", (_D32, "DSEC")),
    (b"\x48\x8b\x54\x24\x08", "mov rdx, [rsp + 8]    ; tv_nsec", _NONE),
    (b"\x48\x03\x15\x00\x00\x00\x00", "add rdx, [rip + DNSEC]", (_D32, "DNSEC")),
    (b"\x48\x81\xfa" + _NS_MAX, "cmp rdx, 999999999", _NONE),
    (b"\x7e\x00", "jle nocarry", (_R8, "nocarry")),
    (b"\x48\xff\xc0", "inc rax               ; carry a second", _NONE),
    "nocarry",
    (b"\x4d\x85\xc0", "test r8, r8", _NONE),
    (b"\x74\x00", "jz out", (_R8, "out")),
    (b"\x49\x89\x00", "mov [r8], rax         ; *tloc = the result too", _NONE),
    "out",
    (b"\x48\x83\xc4\x18", "add rsp, 24", _NONE),
    (b"\x31\xc9", "xor ecx, ecx", _NONE),
    (b"\xc3", "ret                   ; rax = seconds since the epoch, shifted", _NONE),
]

LISTINGS = {"clock_gettime": CLOCK_GETTIME, "gettimeofday": GETTIMEOFDAY, "time": TIME}
_DATA = {"MASK": MASK, "DSEC": DSEC, "DNSEC": DNSEC, "USEC_SEC": USEC_SEC, "DUSEC": DUSEC}


def assemble(listing: list[str | Insn], origin: int) -> bytes:
    """The listing's bytes at page offset `origin`, its jumps and rip-relative operands filled in."""
    labels, position = dict(_DATA), origin
    for item in listing:
        if isinstance(item, str):
            labels[item] = position
        else:
            position += len(item[0])
    out, position = bytearray(), origin
    for item in listing:
        if isinstance(item, str):
            continue
        code, _, fixup = item
        position += len(code)
        if fixup is not None:
            width, label = fixup
            displacement = labels[label] - position
            code = code[:-width] + displacement.to_bytes(width, "little", signed=True)
        out += code
    return bytes(out)


def jump(address: int) -> bytes:
    """12 bytes for a function's entry: `movabs rax, address` (48 b8 imm64), `jmp rax` (ff e0).
    rax is free at a function's entry (it only carries the result)."""
    return b"\x48\xb8" + address.to_bytes(8, "little") + b"\xff\xe0"


def jump_target(code: bytes) -> int | None:
    if len(code) >= JUMP_SIZE and code[:2] == b"\x48\xb8" and code[10:12] == b"\xff\xe0":
        return int.from_bytes(code[2:10], "little")
    return None


@dataclass(frozen=True)
class Patch:
    routine: str  # clock_gettime | gettimeofday | time
    vdso_offset: int  # of the function's entry in the vDSO
    original: bytes  # the JUMP_SIZE bytes the jump replaces


@dataclass(frozen=True)
class Header:
    short_id: str
    mask: int
    offset_ns: int
    patches: tuple[Patch, ...]


def page(short_id: str, mask: int, offset_ns: int, patches: list[Patch]) -> bytes:
    sec, nsec = divmod(offset_ns, 10**9)
    usec_sec, usec = divmod(offset_ns // 1000, 10**6)
    data = bytearray(PAGE)
    data[0:16] = MAGIC
    data[16:32] = short_id.encode().ljust(16, b"\0")
    struct.pack_into("<Qqqqqq", data, MASK, mask, sec, nsec, usec_sec, usec, offset_ns)
    struct.pack_into("<I", data, COUNT, len(patches))
    for i, patch in enumerate(patches):
        PATCH_RECORD.pack_into(data, PATCHES + i * PATCH_RECORD.size, patch.vdso_offset,
                               patch.original.ljust(16, b"\0"), ROUTINES[patch.routine])
    for name, origin in ROUTINES.items():
        code = assemble(LISTINGS[name], origin)
        data[origin:origin + len(code)] = code
    return bytes(data)


HEADER_SIZE = PATCHES + 3 * PATCH_RECORD.size


def header(data: bytes) -> Header | None:
    """The header of one of our pages (its first HEADER_SIZE bytes), or None if it is not one."""
    if len(data) < HEADER_SIZE or data[:16] != MAGIC:
        return None
    short_id = data[16:32].rstrip(b"\0").decode("ascii", "replace")
    mask, offset_ns = struct.unpack_from("<Q", data, MASK)[0], struct.unpack_from("<q", data, OFFSET_NS)[0]
    count = min(struct.unpack_from("<I", data, COUNT)[0], 3)
    by_origin = {origin: name for name, origin in ROUTINES.items()}
    patches = []
    for i in range(count):
        offset, original, origin = PATCH_RECORD.unpack_from(data, PATCHES + i * PATCH_RECORD.size)
        if origin in by_origin:
            patches.append(Patch(by_origin[origin], offset, original[:JUMP_SIZE]))
    return Header(short_id, mask, offset_ns, tuple(patches))


# -- the vDSO's ELF --------------------------------------------------------------------------------------
class NotAVdso(Exception):
    pass


def symbols(image: bytes) -> dict[str, tuple[int, int]]:
    """Functions of a vDSO image: name -> (offset from the image's start, size), from .dynsym."""
    if image[:4] != b"\x7fELF":
        raise NotAVdso("no ELF header")
    if image[4] != 2 or image[5] != 1:
        raise NotAVdso("not a 64-bit little-endian ELF (a 32-bit process?)")
    machine, = struct.unpack_from("<H", image, 18)
    if machine != 62:
        raise NotAVdso(f"ELF machine {machine}, not x86_64 (62)")
    phoff, shoff = struct.unpack_from("<QQ", image, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", image, 54)
    base = None
    for i in range(phnum):
        p_type, _, _, p_vaddr = struct.unpack_from("<IIQQ", image, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD: the address symbols are relative to
            base = p_vaddr
            break
    if base is None or shoff == 0 or shoff + shnum * shentsize > len(image):
        raise NotAVdso("no loadable segment or section headers")
    sections = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + i * shentsize) for i in range(shnum)]
    out: dict[str, tuple[int, int]] = {}
    for _, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize in sections:
        if sh_type != 11 or not sh_entsize:  # SHT_DYNSYM
            continue
        str_offset, str_size = sections[sh_link][4], sections[sh_link][5]
        for k in range(sh_size // sh_entsize):
            st_name, st_info, _, st_shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", image, sh_offset + k * sh_entsize)
            if st_info & 0xF != 2 or st_shndx == 0 or st_name >= str_size:  # STT_FUNC, defined
                continue
            end = image.index(b"\0", str_offset + st_name)
            out[image[str_offset + st_name:end].decode("ascii", "replace")] = (st_value - base, st_size)
    return out


def scratch(image: bytes) -> int:
    """Offset of spare room in a vDSO image for a trampoline: past everything its ELF file holds
    (segments, sections and section headers), where the kernel's copy is zero-padded to whole pages."""
    phoff, shoff = struct.unpack_from("<QQ", image, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", image, 54)
    end = shoff + shnum * shentsize
    for i in range(phnum):
        _, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", image, phoff + i * phentsize)
        end = max(end, p_offset + p_filesz)
    for i in range(shnum):
        _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from("<IIQQQQ", image, shoff + i * shentsize)
        if sh_type != 8:  # SHT_NOBITS takes no room in the file
            end = max(end, sh_offset + sh_size)
    start = (end + 15) & ~15
    if start + TRAMPOLINE_ROOM > len(image) or any(image[start:start + TRAMPOLINE_ROOM]):
        raise NotAVdso(f"no spare room in the vDSO for a {TRAMPOLINE_ROOM}-byte trampoline")
    return start


TRAMPOLINE_ROOM = 128
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
SYS_RESTART_SYSCALL = 219
_MOVABS = {"rdi": b"\x48\xbf", "rsi": b"\x48\xbe", "rdx": b"\x48\xba", "r10": b"\x49\xba", "r8": b"\x49\xb8",
           "r9": b"\x49\xb9", "rcx": b"\x48\xb9", "r11": b"\x49\xbb", "rax": b"\x48\xb8"}


def trampoline(regs: dict[str, int]) -> bytes:
    """Where a thread runs a system call we give it (registers = the call's number and arguments):

        0f 05                   syscall
        48 bf <imm64>           movabs rdi, <its rdi>
        ... likewise rsi (48 be), rdx (48 ba), r10 (49 ba), r8 (49 b8), r9 (49 b9),
        rcx (48 b9) and r11 (49 bb), the registers the call's arguments and `syscall` itself clobber
        48 b8 <imm64>           movabs rax, <its rax>
        ff 25 00 00 00 00       jmp [rip + 0]             ; to the 8 bytes that follow
        <imm64>                 <its rip>

    While we are alive the thread never gets past `syscall` (we stop it at the call's exit and put its
    registers back ourselves); the rest is its way home if we die meanwhile. `regs` are its registers
    when it was stopped; if that was inside a system call the kernel would restart (rax = -ERESTART*),
    the way home restarts it as the kernel would: rax = the call (or restart_syscall), rip - 2 (its
    own `syscall` instruction)."""
    rax, rip, orig = regs["rax"], regs["rip"], regs["orig_rax"]
    signed_rax = rax - 2**64 if rax >= 2**63 else rax
    if orig < 2**63 and -signed_rax in (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND):
        rax, rip = orig, rip - 2
    elif orig < 2**63 and -signed_rax == ERESTART_RESTARTBLOCK:
        rax, rip = SYS_RESTART_SYSCALL, rip - 2
    out = bytearray(b"\x0f\x05")
    for name, opcode in _MOVABS.items():
        out += opcode + ((rax if name == "rax" else regs[name]) & (2**64 - 1)).to_bytes(8, "little")
    out += b"\xff\x25\x00\x00\x00\x00" + (rip & (2**64 - 1)).to_bytes(8, "little")
    return bytes(out)

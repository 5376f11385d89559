//! The attach handshake: how a media process joins the control plane's segment and gets the
//! doorbells, over a Unix stream socket beside the segment.
//!
//! Protocol (all fixed-size, native-endian; the first 12 bytes of a hello never change
//! across ABI versions, so a mismatch is always reported as such):
//!
//! 1. media → control: [`Hello`] (32 bytes: magic, ABI version, role, workers, pid, epoch).
//! 2. control → media: its `Hello`. Each side checks the other's ([`Hello::check_peer`]):
//!    magic, version, role, worker count, epoch. Control always sends its hello before
//!    judging, so both ends report the same mismatch.
//! 3. control → media: the doorbell fds (every command doorbell, then every event doorbell)
//!    in batches of at most [`FDS_PER_MESSAGE`], each an 8-byte [`FdBatchHeader`] carrying its
//!    fds as SCM_RIGHTS ancillary data.
//! 4. media → control: one ack byte.
//!
//! The connection then stays open with nothing more said; either end reading EOF means the
//! other process has gone ([`Attachment::peer_gone`]).
//!
//! The checks ([`Hello::check_peer`], [`FdCollector`]) are pure; the socket code around them
//! is a thin blocking driver.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytemuck::{must_cast, Pod, Zeroable};

use crate::doorbell::{poll_readable, Doorbell, DoorbellSet};
use crate::error::ShmqError;
use crate::segment::{Segment, ABI_VERSION, MAGIC};

/// How long [`attach`] waits for the control plane to complete the handshake.
pub const ATTACH_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most fds sent in one message (the kernel's limit, SCM_MAX_FD, is 253).
pub const FDS_PER_MESSAGE: usize = 64;

const ROLE_CONTROL: u32 = 1;
const ROLE_MEDIA: u32 = 2;
const ACK: u8 = 0xa5;

/// The first message each side sends.
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub magic: [u8; 8],
    pub abi_version: u32,
    /// 1 = control plane, 2 = media plane.
    pub role: u32,
    pub workers: u32,
    pub pid: u32,
    pub epoch: u64,
}

/// Size of a [`Hello`] on the wire.
pub const HELLO_SIZE: usize = std::mem::size_of::<Hello>();
const _: () = assert!(HELLO_SIZE == 32);

impl Hello {
    fn for_segment(role: u32, segment: &Segment) -> Hello {
        Hello {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            role,
            workers: u32::try_from(segment.workers()).unwrap_or(u32::MAX),
            pid: std::process::id(),
            epoch: segment.epoch(),
        }
    }

    /// The hello the control plane sends for `segment`.
    pub fn control(segment: &Segment) -> Hello {
        Hello::for_segment(ROLE_CONTROL, segment)
    }

    /// The hello a media process sends for `segment`.
    pub fn media(segment: &Segment) -> Hello {
        Hello::for_segment(ROLE_MEDIA, segment)
    }

    pub fn to_bytes(&self) -> [u8; HELLO_SIZE] {
        must_cast(*self)
    }

    pub fn from_bytes(bytes: [u8; HELLO_SIZE]) -> Hello {
        must_cast(bytes)
    }

    /// Checks the peer's hello against ours (`self`): same magic, ABI version, worker count
    /// and epoch, and the opposite role.
    pub fn check_peer(&self, peer: &Hello) -> Result<(), ShmqError> {
        if peer.magic != self.magic {
            return Err(ShmqError::BadMagic);
        }
        if peer.abi_version != self.abi_version {
            return Err(ShmqError::VersionMismatch {
                ours: self.abi_version,
                theirs: peer.abi_version,
            });
        }
        let expected_role = if self.role == ROLE_CONTROL {
            ROLE_MEDIA
        } else {
            ROLE_CONTROL
        };
        if peer.role != expected_role {
            return Err(ShmqError::Handshake(format!(
                "peer has role {}, expected {expected_role}",
                peer.role
            )));
        }
        if peer.workers != self.workers {
            return Err(ShmqError::WorkerCountMismatch {
                ours: self.workers as usize,
                theirs: peer.workers as usize,
            });
        }
        if peer.epoch != self.epoch {
            return Err(ShmqError::EpochMismatch {
                ours: self.epoch,
                theirs: peer.epoch,
            });
        }
        Ok(())
    }
}

/// Precedes each batch of doorbell fds.
#[repr(C)]
#[derive(Pod, Zeroable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBatchHeader {
    /// Index (commands first, then events) of the batch's first fd.
    pub first: u32,
    /// Number of fds attached to this batch.
    pub count: u32,
}

const BATCH_HEADER_SIZE: usize = std::mem::size_of::<FdBatchHeader>();

/// Media side: accumulates doorbell fds batch by batch and checks that they arrive complete
/// and in order.
#[derive(Debug)]
pub struct FdCollector {
    expected: usize,
    received: Vec<OwnedFd>,
}

impl FdCollector {
    pub fn new(expected: usize) -> FdCollector {
        FdCollector {
            expected,
            received: Vec::with_capacity(expected),
        }
    }

    /// Takes one batch; the fds are kept (or closed, on error) either way.
    pub fn accept_batch(
        &mut self,
        header: FdBatchHeader,
        fds: Vec<OwnedFd>,
    ) -> Result<(), ShmqError> {
        let have = self.received.len();
        if header.first as usize != have {
            return Err(ShmqError::Handshake(format!(
                "fd batch starts at {}, expected {have}",
                header.first
            )));
        }
        if header.count as usize != fds.len() || fds.is_empty() {
            return Err(ShmqError::Handshake(format!(
                "fd batch announces {} fds but carries {}",
                header.count,
                fds.len()
            )));
        }
        if have + fds.len() > self.expected {
            return Err(ShmqError::Handshake(format!(
                "received {} fds, expected {}",
                have + fds.len(),
                self.expected
            )));
        }
        self.received.extend(fds);
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        self.received.len() == self.expected
    }

    /// Splits the fds into a [`DoorbellSet`] of `workers` workers (commands first).
    pub fn into_doorbells(self, workers: usize) -> Result<DoorbellSet, ShmqError> {
        if !self.is_complete() || self.expected != workers * 2 {
            return Err(ShmqError::Handshake(format!(
                "have {} fds, need {}",
                self.received.len(),
                workers * 2
            )));
        }
        let mut doorbells = self
            .received
            .into_iter()
            .map(Doorbell::from_received_fd)
            .collect::<io::Result<Vec<_>>>()?;
        let events = doorbells.split_off(workers);
        Ok(DoorbellSet {
            commands: doorbells,
            events,
        })
    }
}

/// Control side: the listening socket media processes attach through.
#[derive(Debug)]
pub struct AttachListener {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file we bound, so Drop removes only our own.
    identity: (u64, u64),
}

impl AttachListener {
    /// Listens at `path`, replacing a stale socket file left there (but refusing to replace
    /// anything that is not a socket). The socket file is made owner-only and removed on drop.
    pub fn bind(path: &Path) -> io::Result<AttachListener> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        let meta = fs::symlink_metadata(path)?;
        Ok(AttachListener {
            listener,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks up to `timeout` for one media process and completes the whole handshake within
    /// it: exchanges hellos (mismatch → `VersionMismatch`, `EpochMismatch`, ...) and sends
    /// every doorbell fd (commands then events) with SCM_RIGHTS.
    pub fn accept(
        &self,
        segment: &Segment,
        doorbells: &DoorbellSet,
        timeout: Duration,
    ) -> Result<Attachment, ShmqError> {
        let workers = segment.workers();
        if doorbells.commands.len() != workers || doorbells.events.len() != workers {
            return Err(ShmqError::InvalidConfig(format!(
                "doorbell set has {} command and {} event doorbells for {workers} workers",
                doorbells.commands.len(),
                doorbells.events.len()
            )));
        }
        let deadline = Instant::now() + timeout;
        let stream = self.accept_stream(deadline)?;
        let ours = Hello::control(segment);

        set_deadline(&stream, deadline)?;
        let peer = Hello::from_bytes(read_array(&stream)?);
        (&stream)
            .write_all(&ours.to_bytes())
            .map_err(handshake_io)?;
        ours.check_peer(&peer)?;

        let fds: Vec<RawFd> = doorbells
            .commands
            .iter()
            .chain(&doorbells.events)
            .map(Doorbell::as_raw_fd)
            .collect();
        for (batch, chunk) in fds.chunks(FDS_PER_MESSAGE).enumerate() {
            let header = FdBatchHeader {
                first: (batch * FDS_PER_MESSAGE) as u32,
                count: chunk.len() as u32,
            };
            set_deadline(&stream, deadline)?;
            send_with_fds(&stream, bytemuck::bytes_of(&header), chunk).map_err(handshake_io)?;
        }

        set_deadline(&stream, deadline)?;
        let [ack] = read_array::<1>(&stream)?;
        if ack != ACK {
            return Err(ShmqError::Handshake(format!("bad ack byte {ack:#04x}")));
        }
        tracing::info!(
            media_pid = peer.pid,
            epoch = ours.epoch,
            workers,
            "media process attached"
        );
        Attachment::new(stream, peer.pid)
    }

    fn accept_stream(&self, deadline: Instant) -> Result<UnixStream, ShmqError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !poll_readable(self.listener.as_raw_fd(), Some(left))? {
                return Err(ShmqError::Timeout);
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    return Ok(stream);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(ShmqError::Timeout);
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl AsRawFd for AttachListener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

impl Drop for AttachListener {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Media side: connects to the control plane's [`AttachListener`] at `socket`, exchanges
/// hellos for `segment` and receives the doorbells. Waits at most
/// [`ATTACH_HANDSHAKE_TIMEOUT`].
pub fn attach(socket: &Path, segment: &Segment) -> Result<(DoorbellSet, Attachment), ShmqError> {
    let stream = UnixStream::connect(socket)?;
    let deadline = Instant::now() + ATTACH_HANDSHAKE_TIMEOUT;
    let ours = Hello::media(segment);

    set_deadline(&stream, deadline)?;
    (&stream)
        .write_all(&ours.to_bytes())
        .map_err(handshake_io)?;
    let peer = Hello::from_bytes(read_array(&stream)?);
    ours.check_peer(&peer)?;

    let mut collector = FdCollector::new(segment.workers() * 2);
    while !collector.is_complete() {
        set_deadline(&stream, deadline)?;
        let mut header = [0u8; BATCH_HEADER_SIZE];
        let mut fds = Vec::new();
        recv_exact_with_fds(&stream, &mut header, &mut fds).map_err(handshake_io)?;
        collector.accept_batch(must_cast(header), fds)?;
    }
    let doorbells = collector.into_doorbells(segment.workers())?;

    set_deadline(&stream, deadline)?;
    (&stream).write_all(&[ACK]).map_err(handshake_io)?;
    tracing::info!(
        control_pid = peer.pid,
        epoch = ours.epoch,
        workers = segment.workers(),
        "attached to control plane"
    );
    Ok((doorbells, Attachment::new(stream, peer.pid)?))
}

/// One end of an established attachment. Holding it keeps the connection open; when the other
/// process exits, its end closes and [`Attachment::peer_gone`] turns true (and the fd becomes
/// readable, for pollers).
#[derive(Debug)]
pub struct Attachment {
    stream: UnixStream,
    peer_pid: u32,
}

impl Attachment {
    fn new(stream: UnixStream, peer_pid: u32) -> Result<Attachment, ShmqError> {
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        stream.set_nonblocking(true)?;
        Ok(Attachment { stream, peer_pid })
    }

    /// Whether the other side has closed the connection (exited). Never blocks. Any bytes the
    /// peer sends after the handshake (there should be none) are discarded.
    pub fn peer_gone(&self) -> bool {
        let mut buffer = [0u8; 64];
        loop {
            // SAFETY: receives at most buffer.len() bytes into a live buffer.
            let received = unsafe {
                libc::recv(
                    self.stream.as_raw_fd(),
                    buffer.as_mut_ptr().cast::<libc::c_void>(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if received == 0 {
                return true;
            }
            if received > 0 {
                continue; // unexpected bytes: drop them and look again
            }
            return match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock => false,
                io::ErrorKind::Interrupted => continue,
                _ => true, // ECONNRESET and friends: the peer is gone
            };
        }
    }

    /// The peer's process id, as it announced in its hello.
    pub fn peer_pid(&self) -> u32 {
        self.peer_pid
    }

    /// The connection's fd, for registering with a poller (readable = peer gone).
    pub fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl AsRawFd for Attachment {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl AsFd for Attachment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

// ---- blocking socket driver ----

fn set_deadline(stream: &UnixStream, deadline: Instant) -> Result<(), ShmqError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ShmqError::Timeout);
    }
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    Ok(())
}

fn handshake_io(error: io::Error) -> ShmqError {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ShmqError::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => ShmqError::Handshake(format!(
            "peer closed the connection during the handshake ({error})"
        )),
        _ => ShmqError::Io(error),
    }
}

fn read_array<const N: usize>(mut stream: &UnixStream) -> Result<[u8; N], ShmqError> {
    let mut bytes = [0u8; N];
    stream.read_exact(&mut bytes).map_err(handshake_io)?;
    Ok(bytes)
}

/// Space for the control message of one batch.
// SAFETY: CMSG_SPACE is pure arithmetic.
const CMSG_BUFFER_LEN: usize =
    unsafe { libc::CMSG_SPACE((FDS_PER_MESSAGE * std::mem::size_of::<RawFd>()) as u32) } as usize;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuffer([u8; CMSG_BUFFER_LEN]);

/// Sends `payload` with `fds` attached (SCM_RIGHTS) to its first byte.
fn send_with_fds(stream: &UnixStream, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > FDS_PER_MESSAGE || payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "send_with_fds needs a payload and 1..=FDS_PER_MESSAGE fds",
        ));
    }
    let fd_bytes = std::mem::size_of_val(fds);
    let mut control = CmsgBuffer([0; CMSG_BUFFER_LEN]);
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast::<libc::c_void>(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is its documented initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast::<libc::c_void>();
    // SAFETY: pure arithmetic.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as _;
    // SAFETY: the control buffer is aligned, zeroed and at least CMSG_SPACE(fd_bytes) long,
    // so the first header and its data fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the control message"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fd_bytes);
    }
    let sent = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            break sent as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    // The fds went with the first byte; send whatever of the payload did not fit.
    if let Some(rest) = payload.get(sent..) {
        let mut writer = stream;
        writer.write_all(rest)?;
    }
    Ok(())
}

/// Fills `buf` completely, collecting every fd that arrives as SCM_RIGHTS into `fds`
/// (close-on-exec). EOF before `buf` is full is `UnexpectedEof`.
fn recv_exact_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        let received = recv_with_fds(stream, rest, fds)?;
        if received == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += received;
    }
    Ok(())
}

/// One recvmsg into `buf`; fds received are appended to `fds`. Returns bytes received.
fn recv_with_fds(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut control = CmsgBuffer([0; CMSG_BUFFER_LEN]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is its documented initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast::<libc::c_void>();
    msg.msg_controllen = CMSG_BUFFER_LEN as _;
    let received = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let received =
            unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if received >= 0 {
            break received as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    // SAFETY: the kernel filled msg_control with well-formed headers within msg_controllen;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it, and the fds it passed are now ours.
    unsafe {
        let header_len = libc::CMSG_LEN(0) as usize;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data_len = ((*cmsg).cmsg_len as usize).saturating_sub(header_len);
                let data = libc::CMSG_DATA(cmsg);
                for index in 0..data_len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(
                        data.add(index * std::mem::size_of::<RawFd>())
                            .cast::<RawFd>(),
                    );
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other(
            "control message truncated: the peer sent more fds than expected",
        ));
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempSegmentPath;
    use std::sync::Arc;
    use std::thread;

    fn segment(label: &str, workers: usize) -> (TempSegmentPath, Arc<Segment>) {
        let path = TempSegmentPath::new(label);
        let segment = Segment::create(&path, workers, 8).unwrap();
        (path, segment)
    }

    fn socket_path(label: &str) -> TempSegmentPath {
        TempSegmentPath::new(&format!("{label}-sock"))
    }

    #[test]
    fn hello_checks() {
        let (_path, segment) = segment("hello", 2);
        let control = Hello::control(&segment);
        let media = Hello::media(&segment);
        assert!(control.check_peer(&media).is_ok());
        assert!(media.check_peer(&control).is_ok());
        assert!(matches!(
            control.check_peer(&control),
            Err(ShmqError::Handshake(_))
        ));

        let mut bad = media;
        bad.magic = *b"HTTP/1.1";
        assert!(matches!(control.check_peer(&bad), Err(ShmqError::BadMagic)));

        let mut bad = media;
        bad.abi_version = 7;
        match control.check_peer(&bad) {
            Err(ShmqError::VersionMismatch { ours, theirs }) => {
                assert_eq!((ours, theirs), (ABI_VERSION, 7))
            }
            other => panic!("{other:?}"),
        }

        let mut bad = media;
        bad.workers = 3;
        assert!(matches!(
            control.check_peer(&bad),
            Err(ShmqError::WorkerCountMismatch { ours: 2, theirs: 3 })
        ));

        let mut bad = media;
        bad.epoch += 1;
        assert!(matches!(
            control.check_peer(&bad),
            Err(ShmqError::EpochMismatch { .. })
        ));

        assert_eq!(Hello::from_bytes(media.to_bytes()), media);
        assert_eq!(&media.to_bytes()[..8], b"SWBDSHMQ");
    }

    #[test]
    fn fd_collector_enforces_order_and_counts() {
        let fds = |n: usize| -> Vec<OwnedFd> {
            (0..n)
                .map(|_| OwnedFd::from(Doorbell::new().unwrap()))
                .collect()
        };
        let mut collector = FdCollector::new(4);
        assert!(matches!(
            collector.accept_batch(FdBatchHeader { first: 1, count: 2 }, fds(2)),
            Err(ShmqError::Handshake(_))
        ));
        assert!(matches!(
            collector.accept_batch(FdBatchHeader { first: 0, count: 3 }, fds(2)),
            Err(ShmqError::Handshake(_))
        ));
        assert!(matches!(
            collector.accept_batch(FdBatchHeader { first: 0, count: 0 }, fds(0)),
            Err(ShmqError::Handshake(_))
        ));
        collector
            .accept_batch(FdBatchHeader { first: 0, count: 3 }, fds(3))
            .unwrap();
        assert!(!collector.is_complete());
        assert!(matches!(
            collector.accept_batch(FdBatchHeader { first: 3, count: 2 }, fds(2)),
            Err(ShmqError::Handshake(_))
        ));
        collector
            .accept_batch(FdBatchHeader { first: 3, count: 1 }, fds(1))
            .unwrap();
        assert!(collector.is_complete());
        let set = collector.into_doorbells(2).unwrap();
        assert_eq!((set.commands.len(), set.events.len()), (2, 2));
    }

    #[test]
    fn attach_in_process_shares_the_doorbells() {
        // 40 workers → 80 fds → two batches.
        let (_path, segment) = segment("inproc", 40);
        let socket = socket_path("inproc");
        let listener = AttachListener::bind(&socket).unwrap();
        let doorbells = DoorbellSet::new(40).unwrap();
        let media_segment = Segment::open(segment.path()).unwrap();
        let socket_for_media = socket.to_path_buf();
        let media = thread::spawn(move || attach(&socket_for_media, &media_segment).unwrap());
        let control_end = listener
            .accept(&segment, &doorbells, Duration::from_secs(10))
            .unwrap();
        let (media_bells, media_end) = media.join().unwrap();
        assert_eq!(media_bells.commands.len(), 40);
        assert_eq!(media_bells.events.len(), 40);
        assert_eq!(control_end.peer_pid(), std::process::id());

        doorbells.commands[39].ring();
        assert_eq!(media_bells.commands[39].drain(), 1);
        assert_eq!(media_bells.commands[0].drain(), 0);
        media_bells.events[7].ring();
        media_bells.events[7].ring();
        assert_eq!(doorbells.events[7].drain(), 2);
        assert_eq!(doorbells.commands[7].drain(), 0);

        assert!(!control_end.peer_gone());
        assert!(!media_end.peer_gone());
        drop(media_end);
        assert!(control_end.peer_gone());
    }

    #[test]
    fn control_rejects_a_media_hello_of_another_version() {
        let (_path, segment) = segment("ver-control", 1);
        let socket = socket_path("ver-control");
        let listener = AttachListener::bind(&socket).unwrap();
        let doorbells = DoorbellSet::new(1).unwrap();
        let mut hello = Hello::media(&segment);
        hello.abi_version = ABI_VERSION + 41;
        let socket_for_client = socket.to_path_buf();
        let client = thread::spawn(move || {
            let mut stream = UnixStream::connect(&socket_for_client).unwrap();
            stream.write_all(&hello.to_bytes()).unwrap();
            let mut reply = [0u8; HELLO_SIZE];
            stream.read_exact(&mut reply).unwrap();
            let reply = Hello::from_bytes(reply);
            // The control plane answered with its own version before hanging up.
            assert_eq!(reply.abi_version, ABI_VERSION);
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "no fds after a rejected hello");
        });
        match listener.accept(&segment, &doorbells, Duration::from_secs(10)) {
            Err(ShmqError::VersionMismatch { ours, theirs }) => {
                assert_eq!(ours, ABI_VERSION);
                assert_eq!(theirs, ABI_VERSION + 41);
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
        client.join().unwrap();
    }

    #[test]
    fn media_rejects_a_control_hello_of_another_version() {
        let (_path, segment) = segment("ver-media", 1);
        let socket = socket_path("ver-media");
        let listener = UnixListener::bind(&*socket).unwrap();
        let mut hello = Hello::control(&segment);
        hello.abi_version = ABI_VERSION + 1;
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut theirs = [0u8; HELLO_SIZE];
            stream.read_exact(&mut theirs).unwrap();
            stream.write_all(&hello.to_bytes()).unwrap();
            Hello::from_bytes(theirs)
        });
        let error = attach(&socket, &segment).unwrap_err();
        assert!(
            matches!(error, ShmqError::VersionMismatch { ours: ABI_VERSION, theirs } if theirs == ABI_VERSION + 1),
            "{error:?}"
        );
        assert!(error.to_string().contains("version mismatch"));
        let media_hello = server.join().unwrap();
        assert_eq!(media_hello.role, ROLE_MEDIA);
        assert_eq!(media_hello.pid, std::process::id());
    }

    #[test]
    fn both_sides_reject_a_different_segment() {
        let (_a_path, control_segment) = segment("epoch-a", 1);
        let (_b_path, media_segment) = segment("epoch-b", 1);
        let socket = socket_path("epoch");
        let listener = AttachListener::bind(&socket).unwrap();
        let doorbells = DoorbellSet::new(1).unwrap();
        let socket_for_media = socket.to_path_buf();
        let media = thread::spawn(move || attach(&socket_for_media, &media_segment));
        let control = listener.accept(&control_segment, &doorbells, Duration::from_secs(10));
        assert!(
            matches!(control, Err(ShmqError::EpochMismatch { .. })),
            "{control:?}"
        );
        let media = media.join().unwrap();
        assert!(
            matches!(media, Err(ShmqError::EpochMismatch { .. })),
            "{media:?}"
        );
    }

    #[test]
    fn accept_times_out_without_a_client() {
        let (_path, segment) = segment("timeout", 1);
        let socket = socket_path("timeout");
        let listener = AttachListener::bind(&socket).unwrap();
        let doorbells = DoorbellSet::new(1).unwrap();
        let started = Instant::now();
        let result = listener.accept(&segment, &doorbells, Duration::from_millis(100));
        assert!(matches!(result, Err(ShmqError::Timeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(5));

        let wrong = DoorbellSet::new(2).unwrap();
        assert!(matches!(
            listener.accept(&segment, &wrong, Duration::from_millis(1)),
            Err(ShmqError::InvalidConfig(_))
        ));
    }

    #[test]
    fn bind_replaces_stale_sockets_but_not_other_files_and_cleans_up() {
        let socket = socket_path("bind");
        let first = AttachListener::bind(&socket).unwrap();
        std::mem::forget(first); // leaves a stale socket file behind, as a crash would
        let second = AttachListener::bind(&socket).unwrap();
        assert!(fs::symlink_metadata(&*socket)
            .unwrap()
            .file_type()
            .is_socket());
        let mode = fs::metadata(&*socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(second);
        assert!(!socket.exists());

        let regular = TempSegmentPath::new("bind-regular");
        fs::write(&*regular, b"keep me").unwrap();
        assert!(AttachListener::bind(&regular).is_err());
        assert_eq!(fs::read(&*regular).unwrap(), b"keep me");
    }

    #[test]
    fn attach_to_a_missing_socket_is_an_io_error() {
        let (_path, segment) = segment("nosock", 1);
        let socket = socket_path("nosock");
        assert!(matches!(attach(&socket, &segment), Err(ShmqError::Io(_))));
    }
}

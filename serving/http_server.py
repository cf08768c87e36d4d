"""An HTTP/1.1 server whose request threads never wait on a client.

One thread accepts and reads every connection (a selector): a connection's bytes are kept
until they hold a whole request, its headers and the body their Content-Length announces,
and only then does the request go to a bounded pool of workers that run the handler and
write the answer. So connections that open and say nothing, or send half a request and wait,
cost a socket and a buffer each, never a thread; a valid request waits for a worker, not for
them.

Deadlines: a connection has `timeout_s` from its opening, or from its previous answer, to
send a whole request; after that it is closed. Answers are written with the same timeout, so
a client that does not read cannot hold a worker longer. At most `max_connections` wait for
their next request (a connection whose request is queued or running does not count): one
more closes the connection that has waited longest.

Queue: at most `max_queued` whole requests wait for a worker. One more is answered at once,
on the reading thread, by the handler with its `server_busy` attribute set, and its
connection is closed after the answer; so a burst costs quick refusals, never an unbounded
backlog of requests that would all time out.
"""

import concurrent.futures
import io
import queue
import selectors
import socket
import threading
import time

from absl import logging

# http.server refuses a request or header line above 65536 bytes (431 or 414); a buffer
# longer than this without the headers' end goes to the handler, which answers so.
_MAX_HEADER_BYTES = 65536 + 4096
_HEADER_END = b"\r\n\r\n"


class _Connection:
  """A client socket, the bytes it has sent that no request has used yet, and its deadline."""

  def __init__(self, sock, address, deadline):
    self.sock = sock
    self.address = address
    self.buffer = bytearray()
    self.deadline = deadline


class _SocketWriter(io.BufferedIOBase):
  """The handler's `wfile`: every write is sent whole (as socketserver's own writer does)."""

  def __init__(self, sock):
    super().__init__()
    self._sock = sock

  def writable(self):
    return True

  def write(self, data):
    self._sock.sendall(data)
    return len(data)


def request_length(buffer, max_body_bytes):
  """How many leading bytes of `buffer` form a request for the handler; None: not yet all.

  A request whose body the handler will refuse unread (no or an invalid Content-Length,
  chunked, or above `max_body_bytes`) is its headers alone: the handler answers and closes.
  """
  end = buffer.find(_HEADER_END)
  if end < 0:
    return len(buffer) if len(buffer) > _MAX_HEADER_BYTES else None
  head = end + len(_HEADER_END)
  fields = {}
  for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
    name, _, value = line.partition(b":")
    fields[name.strip().lower()] = value.strip()
  length = fields.get(b"content-length", b"")
  if b"transfer-encoding" in fields or not length.isdigit() or int(length) > max_body_bytes:
    return head
  return head + int(length) if len(buffer) >= head + int(length) else None


class HttpServer:
  """Serves `handler_class` (an http.server.BaseHTTPRequestHandler) as described above.

  The handler sees this object as its `server`; a front end hangs its configuration on it.

  Args:
    address: (host, port) to listen on; port 0 picks a free one.
    handler_class: answers one request read from `rfile`, writing to `wfile`.
    num_threads: workers running handlers at once.
    timeout_s: time a connection has to send each request, and to read each answer.
    max_body_bytes: largest body waited for (a larger one is refused by the handler).
    max_connections: most connections waiting for their next request.
    max_queued: most whole requests waiting for a worker.
  """

  def __init__(self, address, handler_class, num_threads, timeout_s, max_body_bytes,
               max_connections, max_queued):
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    self._listener = socket.create_server(address, family=family, backlog=1024)
    self._listener.setblocking(False)
    self.server_address = self._listener.getsockname()
    self._handler_class = _one_request(handler_class)
    self._timeout_s = timeout_s
    self._max_body_bytes = max_body_bytes
    self._max_connections = max_connections
    self._pool = concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix="http")
    self._admitted = threading.BoundedSemaphore(num_threads + max_queued)
    self._selector = selectors.DefaultSelector()
    self._waiting = {}  # connections being read, by socket.
    self._returned = queue.SimpleQueue()  # kept-alive connections back from the workers.
    self._wake_reader, self._wake_writer = socket.socketpair()
    self._stop = threading.Event()

  def serve_forever(self):
    self._selector.register(self._listener, selectors.EVENT_READ)
    self._selector.register(self._wake_reader, selectors.EVENT_READ)
    while not self._stop.is_set():
      for key, _ in self._selector.select(self._next_timeout()):
        if key.fileobj is self._listener:
          self._accept()
        elif key.fileobj is self._wake_reader:
          self._take_returned()
        else:
          self._read(key.data)
      self._close_expired()

  def shutdown(self):
    self._stop.set()
    self._wake_writer.send(b"x")

  def server_close(self):
    for connection in list(self._waiting.values()):
      self._close(connection)
    self._listener.close()
    self._pool.shutdown(wait=False, cancel_futures=True)

  def _next_timeout(self):
    deadline = min((c.deadline for c in self._waiting.values()), default=None)
    return 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))

  def _accept(self):
    while True:
      try:
        sock, address = self._listener.accept()
      except BlockingIOError:
        return
      if len(self._waiting) >= self._max_connections:
        self._close(min(self._waiting.values(), key=lambda c: c.deadline))
      sock.setblocking(False)
      # A handler sends the status line and headers, then the body: with Nagle's algorithm
      # the body waits for the client's delayed ACK of the headers (40 ms on Linux).
      sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
      self._wait_for_request(_Connection(sock, address, time.monotonic() + self._timeout_s))

  def _wait_for_request(self, connection):
    self._waiting[connection.sock] = connection
    self._selector.register(connection.sock, selectors.EVENT_READ, connection)
    self._dispatch_if_complete(connection)

  def _read(self, connection):
    try:
      data = connection.sock.recv(65536)
    except BlockingIOError:
      return
    except OSError:
      data = b""
    if not data:
      self._close(connection)
      return
    connection.buffer += data
    self._dispatch_if_complete(connection)

  def _dispatch_if_complete(self, connection):
    length = request_length(connection.buffer, self._max_body_bytes)
    if length is None:
      return
    request = bytes(connection.buffer[:length])
    del connection.buffer[:length]
    self._selector.unregister(connection.sock)
    del self._waiting[connection.sock]
    if self._admitted.acquire(blocking=False):
      self._pool.submit(self._handle, connection, request)
    else:
      self._refuse(connection, request)

  def _refuse(self, connection, request):
    """Answers a request the queue has no room for without waiting, then closes."""
    try:
      # Non-blocking: an answer the socket cannot take at once is dropped with the connection.
      connection.sock.settimeout(0)
      self._handler_class(connection, request, self, server_busy=True)
    except Exception:  # a failed refusal ends only its connection.
      logging.info("Refusing %s failed", connection.address, exc_info=True)
    connection.sock.close()

  def _handle(self, connection, request):
    """Runs the handler on one request (a worker); keeps the connection if it may go on."""
    keep = False
    try:
      connection.sock.settimeout(self._timeout_s)
      handler = self._handler_class(connection, request, self)
      keep = not handler.close_connection
    except Exception:  # a failed answer ends only its connection.
      logging.exception("Answering %s failed", connection.address)
    finally:
      self._admitted.release()
    if keep and not self._stop.is_set():
      connection.sock.setblocking(False)
      connection.deadline = time.monotonic() + self._timeout_s
      self._returned.put(connection)
      self._wake_writer.send(b"x")
    else:
      connection.sock.close()

  def _take_returned(self):
    self._wake_reader.recv(4096)
    while not self._returned.empty():
      self._wait_for_request(self._returned.get())

  def _close_expired(self):
    now = time.monotonic()
    for connection in [c for c in self._waiting.values() if c.deadline <= now]:
      self._close(connection)

  def _close(self, connection):
    self._selector.unregister(connection.sock)
    del self._waiting[connection.sock]
    connection.sock.close()


def _one_request(handler_class):
  """`handler_class`, made to answer one buffered request on a connection the server keeps."""

  class OneRequest(handler_class):

    def __init__(self, connection, buffered, server, server_busy=False):
      self._buffered = buffered
      self.server_busy = server_busy
      super().__init__(connection.sock, connection.address, server)

    def setup(self):
      self.connection = self.request
      self.rfile = io.BytesIO(self._buffered)
      self.wfile = _SocketWriter(self.request)

    def handle(self):
      self.handle_one_request()

  return OneRequest

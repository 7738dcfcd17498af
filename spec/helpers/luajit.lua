-- luajit.lua: a busted helper for runs under LuaJIT (scripts/run-tests.sh).
-- LuaJIT's lua_close may dlclose luasocket's socket/core.so before the
-- finalisers of sockets still alive have run; they then jump into unmapped
-- code and the run ends in a segfault that loses busted's summary. Loading
-- the library once more with RTLD_NODELETE keeps it mapped until exit.
local ffi = require "ffi"
require "socket.core"

ffi.cdef [[ void *dlopen(const char *file, int mode); ]]
local RTLD_NOW, RTLD_NOLOAD, RTLD_NODELETE = 0x2, 0x4, 0x1000

local path = package.searchpath("socket.core", package.cpath)
assert(path, "socket.core not found in package.cpath")
assert(ffi.C.dlopen(path, RTLD_NOW + RTLD_NOLOAD + RTLD_NODELETE) ~= nil,
  "could not pin " .. path)

#!/bin/sh
# pre-pivot hook: hand the assembled root over to the Kairos mounter. A failure
# is reported on the console; the cmdline's rd.emergency decides what follows.
type warn >/dev/null 2>&1 || . /lib/dracut-lib.sh

if ! kairos-agent mount --sysroot "${NEWROOT:-/sysroot}"; then
    warn "kairos: boot-time mount failed, see the messages above"
    die "kairos: cannot assemble the immutable root"
fi

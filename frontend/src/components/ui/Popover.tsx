/** A button that opens a small panel; Escape or a click outside closes it. */
import { useEffect, useId, useRef, useState, type ReactNode } from "react";

import { IconButton } from "./Button";
import type { IconName } from "./Icon";

interface PopoverProps {
  icon: IconName;
  label: string;
  children: ReactNode;
}

export function Popover({ icon, label, children }: PopoverProps) {
  const [open, setOpen] = useState(false);
  const panelId = useId();
  const root = useRef<HTMLDivElement>(null);
  const trigger = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!open) return;
    const onPointer = (event: PointerEvent) => {
      if (!root.current?.contains(event.target as Node)) setOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        setOpen(false);
        trigger.current?.focus();
      }
    };
    document.addEventListener("pointerdown", onPointer);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("pointerdown", onPointer);
      document.removeEventListener("keydown", onKey);
    };
  }, [open]);

  return (
    <div className="popover" ref={root}>
      <IconButton
        ref={trigger}
        icon={icon}
        label={label}
        aria-expanded={open}
        aria-controls={panelId}
        className={open ? "is-active" : ""}
        onClick={() => setOpen((value) => !value)}
      />
      {open && (
        <div id={panelId} className="popover-panel" role="group" aria-label={label}>
          {children}
        </div>
      )}
    </div>
  );
}

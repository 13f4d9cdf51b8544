/** Buttons: one look per intent, an optional icon, and icon-only buttons that still have a name. */
import type { ComponentPropsWithRef } from "react";

import { Icon, type IconName } from "./Icon";

type Variant = "primary" | "secondary" | "ghost" | "danger";

interface ButtonProps extends ComponentPropsWithRef<"button"> {
  variant?: Variant;
  icon?: IconName;
  size?: "md" | "sm";
}

export function Button({
  variant = "secondary",
  icon,
  size = "md",
  className = "",
  children,
  type = "button",
  ...rest
}: ButtonProps) {
  return (
    <button type={type} className={`btn btn-${variant} btn-${size} ${className}`} {...rest}>
      {icon && <Icon name={icon} size={size === "sm" ? 16 : 18} />}
      {children}
    </button>
  );
}

interface IconButtonProps extends ComponentPropsWithRef<"button"> {
  icon: IconName;
  /** The accessible name, also shown as a tooltip. */
  label: string;
  variant?: Variant;
}

export function IconButton({
  icon,
  label,
  variant = "ghost",
  className = "",
  type = "button",
  ...rest
}: IconButtonProps) {
  return (
    <button
      type={type}
      className={`btn btn-${variant} btn-icon ${className}`}
      aria-label={label}
      title={label}
      {...rest}
    >
      <Icon name={icon} />
    </button>
  );
}

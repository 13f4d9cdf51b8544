/** The name review requests give an adapter: what loading or publishing one asks for. */

interface AdapterNameFieldProps {
  label: string;
  value: string;
  onChange: (name: string) => void;
}

export function AdapterNameField({ label, value, onChange }: AdapterNameFieldProps) {
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      <input
        value={value}
        required
        maxLength={64}
        autoComplete="off"
        spellCheck={false}
        placeholder="reviews"
        onChange={(event) => onChange(event.target.value)}
      />
    </label>
  );
}

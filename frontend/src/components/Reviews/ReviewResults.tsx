/** Generated reviews as they stream in, with the model and adapter that wrote them. */
import type { WriterState } from "../../hooks/useReviewWriter";
import { useI18n } from "../../i18n";
import { CopyButton } from "../ui/CopyButton";
import { Icon } from "../ui/Icon";

export function ReviewResults({ state, scale }: { state: WriterState; scale: number }) {
  const { t } = useI18n();
  const streaming = state.status === "streaming";
  if (state.reviews.length === 0) return <p className="muted">{t("reviews.empty")}</p>;
  return (
    <>
      {state.model && (
        <dl className="produced-by">
          <div>
            <dt>{t("reviews.model")}</dt>
            <dd>{state.model}</dd>
          </div>
          <div>
            <dt>{t("reviews.adapterUsed")}</dt>
            <dd>{state.adapter ?? t("reviews.baseOnly")}</dd>
          </div>
        </dl>
      )}
      <ol className="review-list" aria-busy={streaming}>
        {state.reviews.map((review, index) => (
          <li key={index} className="review-card">
            <div className="review-head">
              <h3>{t("reviews.item", { n: index + 1 })}</h3>
              <span className="review-stars" aria-label={t("reviews.ratingValue", { r: review.rating, scale })}>
                <Icon name="star" size={16} filled /> {review.rating}
              </span>
            </div>
            <p className="review-text">
              {review.text || (streaming ? t("reviews.writing") : "")}
              {streaming && review.text && <span className="caret" aria-hidden="true" />}
            </p>
            <div className={`review-actions ${streaming ? "is-hidden" : ""}`}>
              <CopyButton text={review.text} />
            </div>
          </li>
        ))}
      </ol>
      {state.status === "done" && state.reviews.length > 1 && (
        <CopyButton text={state.reviews.map((r) => r.text).join("\n\n")} label={t("reviews.copyAll")} />
      )}
    </>
  );
}
